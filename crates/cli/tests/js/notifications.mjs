// Notifications synced across three devices of one user with the real centrifuge-js SDK. Run by
// crates/cli/tests/centrifuge_js_notifications.rs, which starts the server and passes:
//   WS_URL (ws://.../connection/websocket), USER, TOKEN_1, TOKEN_2, TOKEN_3 (one device each,
//   minted by `switchboard token`), API (http://.../api/v1), API_KEY.
// Devices 1 and 2 stay connected; device 3 connects once (to learn its position on the personal
// channel), goes offline, and on reconnect the SDK recovers from that position.
// Prints one JSON line per step and exits non-zero on the first failure.
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const { WS_URL, USER, TOKEN_1, TOKEN_2, TOKEN_3, API, API_KEY } = process.env;
const STEP_TIMEOUT_MS = 15_000;
const PERSONAL = `user:${USER}`;

function step(name, detail = {}) {
  console.log(JSON.stringify({ step: name, ...detail }));
}

function fail(message) {
  console.log(JSON.stringify({ failed: message }));
  process.exit(1);
}

function expectEqual(what, actual, expected) {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    fail(`${what}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
  }
}

async function api(method, path, body) {
  const response = await fetch(`${API}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) fail(`${method} ${path}: HTTP ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

function waitFor(what, check) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      const value = check();
      if (value) return resolve(value);
      if (Date.now() - started > STEP_TIMEOUT_MS) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

/// A device: a centrifuge-js client and everything it received on the personal channel.
function device(name, token) {
  const client = new Centrifuge(WS_URL, { websocket: WebSocket, token });
  const d = { name, client, pubs: [], subscribed: [] };
  client.on('publication', (ctx) => { if (ctx.channel === PERSONAL) d.pubs.push(ctx); });
  client.on('subscribed', (ctx) => { if (ctx.channel === PERSONAL) d.subscribed.push(ctx); });
  return d;
}

async function connect(d) {
  const before = d.subscribed.length;
  d.client.connect();
  await d.client.ready(STEP_TIMEOUT_MS);
  return waitFor(`${d.name}'s personal channel`, () => d.subscribed.length > before && d.subscribed[d.subscribed.length - 1]);
}

/// The events a device received: `[type, data]` in arrival order.
const events = (d) => d.pubs.map((p) => [p.data?.type, p.data?.data]);
const received = (d, type, check) => d.pubs.find((p) => p.data?.type === type && check(p.data.data));

/// What a device knows of the notifications: id → {read, dismissed}, folded from its events
/// (and, for the device that made a change, from the RPC result: it gets no event of its own).
function view(evs, ownChanges = []) {
  const state = {};
  for (const [type, data] of evs) {
    if (type === 'notification.new') state[data.id] = { read: data.read, dismissed: data.dismissed };
    if (type === 'notification.updated') state[data.id] = { read: data.read, dismissed: data.dismissed };
  }
  for (const c of ownChanges) state[c.id] = { read: c.read, dismissed: c.dismissed };
  return Object.fromEntries(Object.entries(state).sort(([a], [b]) => a.localeCompare(b)));
}

const unreadIn = (v) => Object.values(v).filter((s) => !s.read && !s.dismissed).length;

async function main() {
  const d1 = device('device-1', TOKEN_1);
  const d2 = device('device-2', TOKEN_2);
  const d3 = device('device-3', TOKEN_3);
  for (const d of [d1, d2, d3]) await connect(d);
  step('connected');

  // Device 3 goes offline; the SDK keeps its position on the personal channel.
  d3.client.disconnect();
  if (d3.client.state !== 'disconnected') fail(`device 3 is ${d3.client.state}`);
  step('device 3 offline');

  // 1. The backend creates two notifications: the connected devices get them live, in order.
  for (const id of ['n1', 'n2']) {
    const created = await api('POST', `/users/${USER}/notifications`, { id, title: `Title ${id}` });
    expectEqual(`created ${id}`, [created.id, created.read, created.dismissed], [id, false, false]);
  }
  for (const d of [d1, d2]) {
    await waitFor(`${d.name}: notification.new n2`, () => received(d, 'notification.new', (n) => n.id === 'n2'));
    expectEqual(`${d.name} live events`, events(d).map(([t, n]) => [t, n.id]), [['notification.new', 'n1'], ['notification.new', 'n2']]);
  }
  step('new notifications live', { devices: [d1.name, d2.name] });

  // 2. Device 1 reads n1 through the RPC: device 2 gets notification.updated.
  const rpc = await d1.client.rpc('notifications.read', { ids: ['n1'] });
  const changes = rpc.data.changes;
  expectEqual('the RPC changes', changes.map((c) => [c.id, c.read, c.dismissed]), [['n1', true, false]]);
  const updated = await waitFor('device 2: notification.updated n1', () => received(d2, 'notification.updated', (n) => n.id === 'n1'));
  expectEqual('the update device 2 got', [updated.data.data.read, updated.data.data.dismissed], [true, false]);
  step('read synced to device 2', { changes });

  // 3. Device 1 never gets the update of its own read: a marker published after it reaches
  //    both devices, and device 1 got nothing between n2 and the marker.
  await api('POST', '/publish', { channel: PERSONAL, data: { type: 'marker', data: { id: 'marker' } } });
  for (const d of [d1, d2]) await waitFor(`${d.name}: the marker`, () => received(d, 'marker', () => true));
  expectEqual('device 1 events', events(d1).map(([t, n]) => [t, n.id]), [['notification.new', 'n1'], ['notification.new', 'n2'], ['marker', 'marker']]);
  expectEqual('device 2 events', events(d2).map(([t, n]) => [t, n.id]), [['notification.new', 'n1'], ['notification.new', 'n2'], ['notification.updated', 'n1'], ['marker', 'marker']]);
  step('source device excluded');

  // 4. Device 3 reconnects: the SDK recovers from its position, in order, without gaps.
  const again = await connect(d3);
  if (!again.wasRecovering || !again.recovered) fail(`device 3 subscribed context ${JSON.stringify(again)}`);
  await waitFor('device 3: the marker', () => received(d3, 'marker', () => true));
  const recovered = events(d3).map(([t, n]) => [t, n.id]);
  expectEqual('device 3 recovered', recovered, [['notification.new', 'n1'], ['notification.new', 'n2'], ['notification.updated', 'n1'], ['marker', 'marker']]);
  const offsets = d3.pubs.map((p) => p.offset);
  for (let i = 1; i < offsets.length; i++) {
    if (!(offsets[i] > offsets[i - 1])) fail(`device 3 offsets not increasing: ${JSON.stringify(offsets)}`);
  }
  const update3 = received(d3, 'notification.updated', (n) => n.id === 'n1').data.data;
  expectEqual('the update device 3 recovered', [update3.read, update3.dismissed], [true, false]);
  step('device 3 recovered', { events: recovered, wasRecovering: again.wasRecovering, recovered: again.recovered });

  // 5. The list and the unread count agree with what every device saw.
  const views = { [d1.name]: view(events(d1), changes), [d2.name]: view(events(d2)), [d3.name]: view(events(d3)) };
  const expected = { n1: { read: true, dismissed: false }, n2: { read: false, dismissed: false } };
  for (const [name, v] of Object.entries(views)) expectEqual(`${name}'s view`, v, expected);
  const list = await api('GET', `/users/${USER}/notifications`);
  const listed = view([], list.notifications);
  expectEqual('the list order', list.notifications.map((n) => n.id), ['n2', 'n1']);
  expectEqual('the list against the devices', listed, expected);
  const count = await api('GET', `/users/${USER}/notifications/unread-count`);
  expectEqual('the unread counts (list, unread-count, devices)', [list.unread, count.unread], [unreadIn(expected), unreadIn(expected)]);
  step('list agrees', { unread: count.unread, notifications: listed });

  for (const d of [d1, d2, d3]) d.client.disconnect();
  step('done');
  process.exit(0);
}

main().catch((e) => fail(String(e?.stack ?? e)));
