// One scenario for both variants of the protocol with the real centrifuge-js SDK: its default
// build (JSON) or its Protobuf build, chosen by PROTOCOL=json|protobuf. Run by
// crates/cli/tests/sdk_protocols.rs, which starts the server (memory or Redis engine) and passes:
//   WS_URL, API (http://.../api/v1), API_KEY, PROTOCOL, USER (the user of the devices),
//   TOKEN_A, TOKEN_B, TOKEN_C (three devices of USER), TOKEN_EXPIRED and TOKEN_FRESH (a fourth
//   device), TOKEN_INVALID (signed with another key).
// USER is a member of conversation c1 and not of c2. Prints one JSON line per step and exits
// non-zero on the first failure.
import WebSocket from 'ws';

const { WS_URL, API, API_KEY, PROTOCOL, USER } = process.env;
const { TOKEN_A, TOKEN_B, TOKEN_C, TOKEN_EXPIRED, TOKEN_FRESH, TOKEN_INVALID } = process.env;
const { Centrifuge } = await import(PROTOCOL === 'protobuf' ? 'centrifuge/build/protobuf' : 'centrifuge');
const STEP_TIMEOUT_MS = 20_000;
const PERSONAL = `user:${USER}`;
const MISSED = 1000;

function step(name, detail = {}) {
  console.log(JSON.stringify({ step: name, protocol: PROTOCOL, ...detail }));
}

function fail(message) {
  console.log(JSON.stringify({ failed: message, protocol: PROTOCOL }));
  process.exit(1);
}

/// JSON with object keys sorted, so values compare whatever order their keys came in.
function canonical(value) {
  return JSON.stringify(value, (_, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
      : v);
}

function expectEqual(what, actual, expected) {
  if (canonical(actual) !== canonical(expected)) {
    fail(`${what}: got ${canonical(actual)}, expected ${canonical(expected)}`);
  }
}

// Payloads are the same JSON in both variants: objects in JSON mode, the JSON text's bytes in
// Protobuf mode (the SDK hands the app a Uint8Array).
function decode(data) {
  if (PROTOCOL !== 'protobuf') {
    if (data instanceof Uint8Array) fail('JSON mode got bytes');
    return data;
  }
  if (!(data instanceof Uint8Array)) fail(`Protobuf mode got ${typeof data}, not bytes`);
  return JSON.parse(new TextDecoder().decode(data));
}

function encode(value) {
  return PROTOCOL === 'protobuf' ? new TextEncoder().encode(JSON.stringify(value)) : value;
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

/// A device: a client and what it received on the personal channel, decoded.
function device(name, options) {
  const client = new Centrifuge(WS_URL, { websocket: WebSocket, ...options });
  const d = { name, client, pubs: [], subscribed: [], errors: [], disconnects: [] };
  client.on('publication', (ctx) => {
    if (ctx.channel === PERSONAL) d.pubs.push({ offset: ctx.offset, data: decode(ctx.data) });
  });
  client.on('subscribed', (ctx) => { if (ctx.channel === PERSONAL) d.subscribed.push(ctx); });
  client.on('error', (ctx) => d.errors.push(ctx));
  client.on('disconnected', (ctx) => d.disconnects.push(ctx));
  return d;
}

async function connect(d) {
  const before = d.subscribed.length;
  d.client.connect();
  await d.client.ready(STEP_TIMEOUT_MS);
  return waitFor(`${d.name}'s personal channel`, () => d.subscribed.length > before && d.subscribed[d.subscribed.length - 1]);
}

const ofType = (d, type) => d.pubs.filter((p) => p.data?.type === type);

async function main() {
  const a = device('a', { token: TOKEN_A });
  const b = device('b', { token: TOKEN_B });
  const c = device('c', { token: TOKEN_C });
  for (const d of [a, b, c]) await connect(d);
  step('connected');

  // 1. A publication to user:<id> reaches both connected devices, as the JSON the backend sent.
  c.client.disconnect();
  await api('POST', '/publish', { channel: PERSONAL, data: { type: 'note', data: { n: 0, text: 'hé ✓' } } });
  for (const d of [a, b]) {
    const got = await waitFor(`${d.name}: the publication`, () => ofType(d, 'note')[0]);
    expectEqual(`${d.name}'s publication`, got.data, { type: 'note', data: { n: 0, text: 'hé ✓' } });
  }
  step('personal publication on two devices');

  // 2. The offline device recovers every publication it missed, in order, once.
  for (let n = 1; n < MISSED; n++) {
    await api('POST', '/publish', { channel: PERSONAL, data: { type: 'note', data: { n } } });
  }
  const again = await connect(c);
  if (!again.wasRecovering || !again.recovered) fail(`device c subscribed context ${JSON.stringify(again)}`);
  await waitFor('device c: every missed publication', () => ofType(c, 'note').length >= MISSED);
  const ns = ofType(c, 'note').map((p) => p.data.data.n);
  expectEqual('device c recovered', ns, Array.from({ length: MISSED }, (_, i) => i));
  const offsets = c.pubs.map((p) => p.offset);
  for (let i = 1; i < offsets.length; i++) {
    if (offsets[i] !== offsets[i - 1] + 1) fail(`device c offsets jump at ${i}: ${offsets[i - 1]} -> ${offsets[i]}`);
  }
  step('offline device recovered', { publications: ns.length });

  // 3. Chat: both devices subscribe; the typing RPC reaches the channel as an event.
  const chats = {};
  for (const d of [a, b]) {
    const sub = d.client.newSubscription('chat:c1');
    chats[d.name] = [];
    sub.on('publication', (ctx) => chats[d.name].push(decode(ctx.data)));
    sub.subscribe();
    await sub.ready(STEP_TIMEOUT_MS);
  }
  const typed = await a.client.rpc('typing', encode({ conversation_id: 'c1', typing: true }));
  expectEqual('the typing result', decode(typed.data), {});
  for (const d of [a, b]) {
    const ev = await waitFor(`${d.name}: the typing event`, () => chats[d.name].find((e) => e.type === 'typing'));
    expectEqual(`${d.name}'s typing event`, ev.data, { conversation_id: 'c1', user_id: USER, typing: true });
  }
  step('chat subscribed, typing');

  // 4. notifications.read on device a reaches device b, and not a (the source).
  await api('POST', `/users/${USER}/notifications`, { id: 'n1', title: 'Hello' });
  for (const d of [a, b]) await waitFor(`${d.name}: notification.new`, () => ofType(d, 'notification.new')[0]);
  const read = await a.client.rpc('notifications.read', encode({ ids: ['n1'] }));
  const changes = decode(read.data).changes.map((ch) => [ch.id, ch.read]);
  expectEqual('the read changes', changes, [['n1', true]]);
  const updated = await waitFor('device b: notification.updated', () => ofType(b, 'notification.updated')[0]);
  expectEqual('the update', [updated.data.data.id, updated.data.data.read], ['n1', true]);
  await api('POST', '/publish', { channel: PERSONAL, data: { type: 'marker', data: {} } });
  for (const d of [a, b]) await waitFor(`${d.name}: the marker`, () => ofType(d, 'marker')[0]);
  expectEqual('updates on the source device', ofType(a, 'notification.updated').length, 0);
  step('read synced to the other device only');

  // 5. Refusals. A chat the user is not a member of: 103.
  const other = a.client.newSubscription('chat:c2');
  let refused = null;
  other.on('unsubscribed', (ctx) => { refused = refused ?? ctx.code; });
  other.on('error', (ctx) => { refused = refused ?? ctx.error?.code; });
  other.subscribe();
  await waitFor('the refusal of chat:c2', () => refused !== null);
  expectEqual('chat:c2 refused', refused, 103);
  step('foreign chat refused', { code: refused });

  // An expired token: error 109, then the SDK gets a fresh token and connects.
  let tokenCalls = 0;
  const d = device('d', { token: TOKEN_EXPIRED, getToken: async () => { tokenCalls += 1; return TOKEN_FRESH; } });
  await connect(d);
  const expired = d.errors.find((e) => e.error?.code === 109);
  if (!expired) fail(`no 109 before connecting: ${JSON.stringify(d.errors)}`);
  if (tokenCalls !== 1) fail(`getToken called ${tokenCalls} times`);
  await api('POST', '/publish', { channel: PERSONAL, data: { type: 'after-refresh', data: {} } });
  await waitFor('device d: a publication after the new token', () => ofType(d, 'after-refresh')[0]);
  step('expired token refreshed', { code: 109, tokenCalls });

  // An invalid token: closed with 3500, and the SDK does not reconnect.
  const bad = device('bad', { token: TOKEN_INVALID });
  bad.client.connect();
  const closed = await waitFor('the invalid token refusal', () => bad.disconnects[0]);
  expectEqual('the invalid token code', closed.code, 3500);
  expectEqual('the state after 3500', bad.client.state, 'disconnected');
  step('invalid token refused', { code: closed.code });

  for (const dev of [a, b, c, d]) dev.client.disconnect();
  step('done');
  process.exit(0);
}

main().catch((e) => fail(String(e?.stack ?? e)));
