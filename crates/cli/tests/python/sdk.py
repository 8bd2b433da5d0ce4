"""One scenario for both variants of the protocol with the real centrifuge-python SDK
(use_protobuf=False or True, chosen by PROTOCOL=json|protobuf): the same steps as
crates/cli/tests/js/sdk.mjs. Run by crates/cli/tests/sdk_protocols.rs, which starts the server
(memory or Redis engine) and passes WS_URL, API, API_KEY, PROTOCOL, USER and the tokens
TOKEN_A, TOKEN_B, TOKEN_C, TOKEN_EXPIRED, TOKEN_FRESH, TOKEN_INVALID. USER is a member of
conversation c1 and not of c2. Prints one JSON line per step and exits non-zero on the first
failure."""

import asyncio
import json
import os
import sys
import time
import urllib.request

from centrifuge import (
    Client,
    ClientEventHandler,
    SubscriptionEventHandler,
)

ENV = os.environ
PROTOCOL = ENV["PROTOCOL"]
PROTOBUF = PROTOCOL == "protobuf"
USER = ENV["USER"]
PERSONAL = f"user:{USER}"
MISSED = 1000
STEP_TIMEOUT_S = 20.0


def step(name, **detail):
    print(json.dumps({"step": name, "protocol": PROTOCOL, **detail}, separators=(",", ":")), flush=True)


def fail(message):
    print(json.dumps({"failed": message, "protocol": PROTOCOL}, separators=(",", ":")), flush=True)
    sys.exit(1)


def expect_equal(what, actual, expected):
    if actual != expected:
        fail(f"{what}: got {actual!r}, expected {expected!r}")


def decode(data):
    """Payloads are the same JSON in both variants: the SDK gives objects in JSON mode and the
    JSON text's bytes in Protobuf mode."""
    if not PROTOBUF:
        if isinstance(data, (bytes, bytearray)):
            fail("JSON mode got bytes")
        return data
    if not isinstance(data, (bytes, bytearray)):
        fail(f"Protobuf mode got {type(data).__name__}, not bytes")
    return json.loads(bytes(data).decode("utf-8"))


def encode(value):
    return json.dumps(value).encode("utf-8") if PROTOBUF else value


def _http(method, path, body):
    request = urllib.request.Request(
        ENV["API"] + path,
        method=method,
        data=None if body is None else json.dumps(body).encode("utf-8"),
        headers={"authorization": f"Bearer {ENV['API_KEY']}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        text = response.read().decode("utf-8")
        return json.loads(text) if text else None


async def api(method, path, body=None):
    try:
        return await asyncio.to_thread(_http, method, path, body)
    except Exception as e:  # noqa: BLE001 - any failure ends the scenario
        fail(f"{method} {path}: {e}")


async def wait_for(what, check):
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Device(ClientEventHandler):
    """A client and what it received on the personal channel, decoded."""

    def __init__(self, name, token, get_token=None):
        self.name = name
        self.pubs = []
        self.subscribed = []
        self.errors = []
        self.disconnects = []
        self.client = Client(ENV["WS_URL"], events=self, token=token, get_token=get_token, use_protobuf=PROTOBUF)

    async def on_publication(self, ctx):
        if ctx.channel == PERSONAL:
            self.pubs.append((ctx.pub.offset, decode(ctx.pub.data)))

    async def on_subscribed(self, ctx):
        if ctx.channel == PERSONAL:
            self.subscribed.append(ctx)

    async def on_error(self, ctx):
        self.errors.append(ctx)

    async def on_disconnected(self, ctx):
        self.disconnects.append(ctx)

    def of_type(self, kind):
        return [data for _, data in self.pubs if isinstance(data, dict) and data.get("type") == kind]

    async def connect(self):
        before = len(self.subscribed)
        await self.client.connect()
        await self.client.ready(STEP_TIMEOUT_S)
        return await wait_for(
            f"{self.name}'s personal channel",
            lambda: self.subscribed[-1] if len(self.subscribed) > before else None,
        )


class Chat(SubscriptionEventHandler):
    def __init__(self):
        self.events = []
        self.unsubscribed = []
        self.errors = []

    async def on_publication(self, ctx):
        self.events.append(decode(ctx.pub.data))

    async def on_unsubscribed(self, ctx):
        self.unsubscribed.append(ctx.code)

    async def on_error(self, ctx):
        self.errors.append(ctx)


async def main():
    a, b, c = Device("a", ENV["TOKEN_A"]), Device("b", ENV["TOKEN_B"]), Device("c", ENV["TOKEN_C"])
    for d in (a, b, c):
        await d.connect()
    step("connected")

    # 1. A publication to user:<id> reaches both connected devices, as the JSON the backend sent.
    await c.client.disconnect()
    note = {"type": "note", "data": {"n": 0, "text": "hé ✓"}}
    await api("POST", "/publish", {"channel": PERSONAL, "data": note})
    for d in (a, b):
        got = await wait_for(f"{d.name}: the publication", lambda d=d: d.of_type("note"))
        expect_equal(f"{d.name}'s publication", got[0], note)
    step("personal publication on two devices")

    # 2. The offline device recovers every publication it missed, in order, once.
    for n in range(1, MISSED):
        await api("POST", "/publish", {"channel": PERSONAL, "data": {"type": "note", "data": {"n": n}}})
    again = await c.connect()
    if not (again.was_recovering and again.recovered):
        fail(f"device c subscribed context {again!r}")
    await wait_for("device c: every missed publication", lambda: len(c.of_type("note")) >= MISSED)
    ns = [p["data"]["n"] for p in c.of_type("note")]
    expect_equal("device c recovered", ns, list(range(MISSED)))
    offsets = [int(offset) for offset, _ in c.pubs]
    for i in range(1, len(offsets)):
        if offsets[i] != offsets[i - 1] + 1:
            fail(f"device c offsets jump at {i}: {offsets[i - 1]} -> {offsets[i]}")
    step("offline device recovered", publications=len(ns))

    # 3. Chat: both devices subscribe; the typing RPC reaches the channel as an event.
    chats = {}
    for d in (a, b):
        chats[d.name] = Chat()
        sub = d.client.new_subscription("chat:c1", events=chats[d.name])
        await sub.subscribe()
        await sub.ready(STEP_TIMEOUT_S)
    typed = await a.client.rpc("typing", encode({"conversation_id": "c1", "typing": True}))
    expect_equal("the typing result", decode(typed.data), {})
    for d in (a, b):
        ev = await wait_for(
            f"{d.name}: the typing event",
            lambda d=d: next((e for e in chats[d.name].events if e.get("type") == "typing"), None),
        )
        expect_equal(f"{d.name}'s typing event", ev["data"], {"conversation_id": "c1", "user_id": USER, "typing": True})
    step("chat subscribed, typing")

    # 4. notifications.read on device a reaches device b, and not a (the source).
    await api("POST", f"/users/{USER}/notifications", {"id": "n1", "title": "Hello"})
    for d in (a, b):
        await wait_for(f"{d.name}: notification.new", lambda d=d: d.of_type("notification.new"))
    read = await a.client.rpc("notifications.read", encode({"ids": ["n1"]}))
    changes = [[ch["id"], ch["read"]] for ch in decode(read.data)["changes"]]
    expect_equal("the read changes", changes, [["n1", True]])
    updated = await wait_for("device b: notification.updated", lambda: b.of_type("notification.updated"))
    expect_equal("the update", [updated[0]["data"]["id"], updated[0]["data"]["read"]], ["n1", True])
    await api("POST", "/publish", {"channel": PERSONAL, "data": {"type": "marker", "data": {}}})
    for d in (a, b):
        await wait_for(f"{d.name}: the marker", lambda d=d: d.of_type("marker"))
    expect_equal("updates on the source device", len(a.of_type("notification.updated")), 0)
    step("read synced to the other device only")

    # 5. Refusals. A chat the user is not a member of: 103.
    other = Chat()
    sub = a.client.new_subscription("chat:c2", events=other)
    await sub.subscribe()
    code = await wait_for("the refusal of chat:c2", lambda: other.unsubscribed[0] if other.unsubscribed else None)
    expect_equal("chat:c2 refused", code, 103)
    step("foreign chat refused", code=code)

    # An expired token: error 109, then the SDK gets a fresh token and connects.
    calls = []

    async def get_token():
        calls.append(1)
        return ENV["TOKEN_FRESH"]

    d = Device("d", ENV["TOKEN_EXPIRED"], get_token=get_token)
    await d.client.connect()
    await wait_for("device d: connected", lambda: d.subscribed)
    codes = [getattr(e.error, "code", None) for e in d.errors]
    if 109 not in codes:
        fail(f"no 109 before connecting: {codes!r}")
    expect_equal("getToken calls", len(calls), 1)
    await api("POST", "/publish", {"channel": PERSONAL, "data": {"type": "after-refresh", "data": {}}})
    await wait_for("device d: a publication after the new token", lambda: d.of_type("after-refresh"))
    step("expired token refreshed", code=109, tokenCalls=len(calls))

    # An invalid token: closed with 3500, and the SDK does not reconnect.
    bad = Device("bad", ENV["TOKEN_INVALID"])
    await bad.client.connect()
    closed = await wait_for("the invalid token refusal", lambda: bad.disconnects[0] if bad.disconnects else None)
    expect_equal("the invalid token code", closed.code, 3500)
    expect_equal("the state after 3500", bad.client.state.value, "disconnected")
    step("invalid token refused", code=closed.code)

    for dev in (a, b, c, d):
        await dev.client.disconnect()
    step("done")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - report any failure as the scenario's
        fail(f"{type(e).__name__}: {e}")
