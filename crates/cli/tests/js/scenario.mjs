// Drives Switchboard's gateway with the real centrifuge-js SDK. Run by
// crates/cli/tests/centrifuge_js.rs, which starts the server and passes:
//   WS_URL (ws://.../connection/websocket), TOKEN (minted by `switchboard token`),
//   API (http://.../api/v1), API_KEY.
// Prints one JSON line per step and exits non-zero on the first failure.
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const { WS_URL, TOKEN, API, API_KEY } = process.env;
const STEP_TIMEOUT_MS = 10_000;

function step(name, detail = {}) {
  console.log(JSON.stringify({ step: name, ...detail }));
}

function fail(message) {
  console.log(JSON.stringify({ failed: message }));
  process.exit(1);
}

async function api(method, path, body) {
  const response = await fetch(`${API}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) fail(`${method} ${path}: HTTP ${response.status} ${await response.text()}`);
  const text = await response.text();
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

async function main() {
  // The reconnect delay leaves a window in which publications are missed while offline.
  const client = new Centrifuge(WS_URL, {
    websocket: WebSocket,
    token: TOKEN,
    minReconnectDelay: 1500,
    maxReconnectDelay: 2000,
  });
  const personal = [];
  const serverSubscribed = [];
  client.on('publication', (ctx) => personal.push(ctx));
  client.on('subscribed', (ctx) => serverSubscribed.push(ctx));
  let disconnects = 0;
  client.on('connecting', (ctx) => { if (ctx.code !== 0) disconnects += 1; });
  client.connect();
  await client.ready(STEP_TIMEOUT_MS);
  await waitFor('the personal channel', () => serverSubscribed.find((s) => s.channel === 'user:alice'));
  step('connected');

  // 1. Publications on the personal channel.
  await api('POST', '/publish', { channel: 'user:alice', data: { type: 'note', data: { n: 1 } } });
  const first = await waitFor('a personal publication', () => personal.find((p) => p.data?.data?.n === 1));
  step('personal publication', { channel: first.channel, offset: first.offset });

  // 2. A chat channel the user belongs to.
  const chat = client.newSubscription('chat:c1');
  const chatPubs = [];
  chat.on('publication', (ctx) => chatPubs.push(ctx));
  chat.subscribe();
  await chat.ready(STEP_TIMEOUT_MS);
  await api('POST', '/publish', { channel: 'chat:c1', data: { type: 'message.new', data: { text: 'hi' } } });
  await waitFor('a chat publication', () => chatPubs.find((p) => p.data?.type === 'message.new'));
  step('chat subscribed');

  // 3. A chat channel the user does not belong to is refused.
  const other = client.newSubscription('chat:c2');
  let refusedCode = null;
  other.on('unsubscribed', (ctx) => { refusedCode = ctx.code; });
  other.on('error', (ctx) => { refusedCode = refusedCode ?? ctx.error?.code; });
  other.subscribe();
  await waitFor('the refusal of chat:c2', () => refusedCode !== null);
  if (refusedCode !== 103) fail(`chat:c2 refused with ${refusedCode}, expected 103`);
  step('foreign chat refused', { code: refusedCode });

  // 4. The typing RPC; the typing event arrives on the chat channel.
  const rpc = await client.rpc('typing', { conversation_id: 'c1', typing: true });
  await waitFor('the typing event', () => chatPubs.find((p) => p.data?.type === 'typing' && p.data?.data?.user_id === 'alice'));
  step('typing', { result: rpc.data });

  // 5. Recovery: the server drops the connection (reconnect allowed); publications made while
  //    the client waits to reconnect are recovered on the new connection.
  const before = personal.length;
  const subscribedBefore = serverSubscribed.length;
  await api('POST', '/users/alice/disconnect', { reconnect: true });
  await waitFor('the drop', () => disconnects > 0);
  for (let n = 100; n < 105; n++) {
    await api('POST', '/publish', { channel: 'user:alice', data: { type: 'note', data: { n } } });
  }
  const again = await waitFor('the recovered subscription', () => serverSubscribed.length > subscribedBefore && serverSubscribed[serverSubscribed.length - 1]);
  await waitFor('the recovered publications', () => personal.length >= before + 5);
  const recovered = personal.slice(before).map((p) => p.data.data.n);
  if (JSON.stringify(recovered) !== JSON.stringify([100, 101, 102, 103, 104])) fail(`recovered ${JSON.stringify(recovered)}`);
  if (!again.wasRecovering || !again.recovered) fail(`subscribed context ${JSON.stringify(again)}`);
  step('recovered', { publications: recovered, wasRecovering: again.wasRecovering, recovered: again.recovered });

  client.disconnect();
  step('done');
  process.exit(0);
}

main().catch((e) => fail(String(e?.stack ?? e)));
