// The behaviour of room.pubsub against a real server (seed 002).
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { Plaza, PlazaError } from "../plaza.js";
import { URL_, roomName, join, control, inbox, rejects, event, within, leaveAll } from "./helpers.mjs";

afterEach(leaveAll); // a failed test leaves no connection behind

// Spy is a WebSocket that records the frames a room sends.
function spy() {
  const sent = [];
  class Spy extends WebSocket {
    send(data) {
      sent.push(JSON.parse(data));
      super.send(data);
    }
  }
  Spy.sent = sent;
  Spy.of = (type) => sent.filter((f) => f.type === type);
  return Spy;
}

const deep = (n) => { let v = 1; for (let i = 0; i < n; i++) v = [v]; return v; };
const cyclic = () => { const o = {}; o.self = o; return o; };

test("SDK errors come before any I/O, as PlazaErrors with the seed's codes", async () => {
  const WS = spy();
  const room = await join(roomName("sdk"), "alice", { WebSocket: WS });
  const before = WS.sent.length;
  const rows = [
    ["publish to 'chat room'", () => room.pubsub.publish("chat room", 1), "INVALID_TOPIC_NAME"],
    ["publish to ''", () => room.pubsub.publish("", 1), "INVALID_TOPIC_NAME"],
    ["publish to 'a'×200", () => room.pubsub.publish("a".repeat(200), 1), "INVALID_TOPIC_NAME"],
    ["publish to 'a'×129", () => room.pubsub.publish("a".repeat(129), 1), "INVALID_TOPIC_NAME"],
    ["publish to 'chat/x'", () => room.pubsub.publish("chat/x", 1), "INVALID_TOPIC_NAME"],
    ["subscribe to 'chat room'", () => room.pubsub.subscribe("chat room", () => {}), "INVALID_TOPIC_NAME"],
    ["history of ''", () => room.pubsub.getHistory(""), "INVALID_TOPIC_NAME"],
    // 17000 two-byte characters: under 32 KiB of UTF-16 code units' count,
    // 34002 bytes of UTF-8 JSON.
    ["payload of 34002 UTF-8 bytes", () => room.pubsub.publish("chat", "é".repeat(17000)), "PAYLOAD_TOO_LARGE"],
    ["payload of 32 KiB + 1 bytes", () => room.pubsub.publish("chat", "x".repeat(32 * 1024 - 1)), "PAYLOAD_TOO_LARGE"],
    ["BigInt payload", () => room.pubsub.publish("chat", { n: 1n }), "INVALID_PAYLOAD"],
    ["cyclic payload", () => room.pubsub.publish("chat", cyclic()), "INVALID_PAYLOAD"],
    ["undefined payload", () => room.pubsub.publish("chat", undefined), "INVALID_PAYLOAD"],
    ["function payload", () => room.pubsub.publish("chat", () => 1), "INVALID_PAYLOAD"],
    ["NaN in payload", () => room.pubsub.publish("chat", { x: NaN }), "INVALID_PAYLOAD"],
    ["payload nested 65 levels", () => room.pubsub.publish("chat", deep(65)), "INVALID_PAYLOAD"],
    ["metadata that nests", () => room.pubsub.publish("chat", 1, { metadata: { a: { b: "c" } } }), "INVALID_PAYLOAD"],
    ["limit 51", () => room.pubsub.getHistory("chat", { limit: 51 }), "INVALID_LIMIT"],
    ["limit 0", () => room.pubsub.getHistory("chat", { limit: 0 }), "INVALID_LIMIT"],
    ["limit -1", () => room.pubsub.getHistory("chat", { limit: -1 }), "INVALID_LIMIT"],
    ["before and after", () => room.pubsub.getHistory("chat", { before: "5", after: "3" }), "INVALID_HISTORY_OPTS"],
    ["before 'abc'", () => room.pubsub.getHistory("chat", { before: "abc" }), "INVALID_HISTORY_OPTS"],
    ["after '0'", () => room.pubsub.getHistory("chat", { after: "0" }), "INVALID_HISTORY_OPTS"],
    ["subscribe limit -1", () => room.pubsub.subscribe("chat", () => {}, { limit: -1 }), "INVALID_LIMIT"],
  ];
  for (const [name, call, code] of rows) {
    await assert.rejects(call(), (e) => {
      assert.ok(e instanceof PlazaError, `${name}: ${e} is not a PlazaError`);
      assert.equal(e.code, code, `${name}: ${e.message}`);
      assert.equal(e.retriable, false, `${name}: retriable`);
      return true;
    }, name);
  }
  assert.deepEqual(WS.sent.slice(before), [], "frames sent for calls the SDK refuses");
  // The limits themselves are accepted.
  const ok64 = await room.pubsub.publish("chat", deep(63));
  assert.ok(ok64.id);
  await room.pubsub.publish("a".repeat(128), "x".repeat(32 * 1024 - 2));
  await room.leave();
  await room.leave(); // idempotent
  await rejects(room.pubsub.publish("chat", 1), "NOT_CONNECTED");
  await rejects(room.pubsub.subscribe("chat", () => {}), "NOT_CONNECTED");
  await rejects(room.pubsub.getHistory("chat"), "NOT_CONNECTED");
});

test("join: a refused credential is UNAUTHENTICATED, an invalid room name INVALID_TOPIC_NAME", async () => {
  await rejects(Plaza.join(URL_, roomName("auth"), { token: "bad" }), "UNAUTHENTICATED");
  await rejects(Plaza.join(URL_, "no room", { token: "alice" }), "INVALID_TOPIC_NAME");
});

test("publish resolves with the confirmed message, others receive it, the sender does not", async () => {
  const name = roomName("echo");
  const alice = await join(name, "alice");
  const bob = await join(name, "bob");
  assert.equal(alice.clientId, "alice");
  const atBob = inbox();
  const atAlice = inbox();
  await bob.pubsub.subscribe("chat", atBob);
  await alice.pubsub.subscribe("chat", atAlice);
  const msg = await alice.pubsub.publish("chat", { text: "hello" }, { metadata: { priority: "low" } });
  assert.match(msg.id, /^[0-9]+$/, "id is a decimal string");
  assert.equal(msg.from, "alice");
  assert.equal(msg.persisted, true);
  assert.ok(!Number.isNaN(Date.parse(msg.timestamp)), `timestamp ${msg.timestamp}`);
  const [got] = await atBob.next(1, "bob's delivery");
  assert.deepEqual(got, msg, "subscribers get the same shape publish resolves with");
  // Bob answers; Alice receives that, and never her own.
  await bob.pubsub.publish("chat", { text: "hi alice" });
  const [reply] = await atAlice.next(1, "alice's delivery");
  assert.equal(reply.from, "bob");
  assert.deepEqual(atAlice.got.map((m) => m.from), ["bob"], "alice's handler fired for her own message");
  await Promise.all([alice.leave(), bob.leave()]);
});

test("persist:false is live only; to: only the recipients", async () => {
  const name = roomName("opts");
  const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map((n) => join(name, n)));
  const atBob = inbox();
  const atCarol = inbox();
  await bob.pubsub.subscribe("chat", atBob);
  await carol.pubsub.subscribe("chat", atCarol);
  await alice.pubsub.publish("chat", { x: 1 }, { persist: false });
  await alice.pubsub.publish("chat", "for bob", { to: ["bob"] });
  await alice.pubsub.publish("chat", "all");
  await atBob.next(3, "bob's three messages");
  await atCarol.next(2, "carol's two messages");
  assert.deepEqual(atCarol.got.map((m) => m.payload), [{ x: 1 }, "all"]);
  assert.equal(atBob.got[0].persisted, false);
  const carolHistory = await carol.pubsub.getHistory("chat");
  assert.deepEqual(carolHistory.messages.map((m) => m.payload), ["all"], "carol's history");
  const bobHistory = await bob.pubsub.getHistory("chat");
  assert.deepEqual(bobHistory.messages.map((m) => m.payload), ["for bob", "all"], "bob's history");
  await Promise.all([alice.leave(), bob.leave(), carol.leave()]);
});

test("one wire subscription per topic; the same handler twice fires twice; unsubscribe is idempotent", async () => {
  const name = roomName("refcount");
  const WS = spy();
  const alice = await join(name, "alice", { WebSocket: WS });
  const bob = await join(name, "bob");
  const h = inbox();
  const a = await alice.pubsub.subscribe("chat", h);
  const b = await alice.pubsub.subscribe("chat", h);
  assert.equal(a.topic, "chat");
  assert.equal(WS.of("subscribe").length, 1, `subscribe frames: ${JSON.stringify(WS.of("subscribe"))}`);
  await bob.pubsub.publish("chat", 1);
  await h.next(2, "the handler twice for one message");
  await a.unsubscribe();
  await a.unsubscribe();
  assert.equal(WS.of("unsubscribe").length, 0, "unsubscribed on the wire while a subscription is left");
  await bob.pubsub.publish("chat", 2);
  await h.next(3, "the remaining subscription's delivery");
  await b.unsubscribe();
  assert.equal(WS.of("unsubscribe").length, 1, "one unsubscribe frame once the last subscription goes");
  // Nothing more arrives: a marker topic proves the server has sent on.
  const marker = inbox();
  await alice.pubsub.subscribe("marker", marker);
  await bob.pubsub.publish("chat", 3);
  await bob.pubsub.publish("marker", "m");
  await marker.next(1, "the marker");
  assert.deepEqual(h.got.map((m) => m.payload), [1, 1, 2]);
  await Promise.all([alice.leave(), bob.leave()]);
});

test("subscribe: max(limits) on the wire, none if any has none", async () => {
  const WS = spy();
  const alice = await join(roomName("rate"), "alice", { WebSocket: WS });
  const rates = () => WS.of("subscribe").map((f) => f.rate ?? 0);
  const s5 = await alice.pubsub.subscribe("cursor", () => {}, { limit: 5 });
  const s10 = await alice.pubsub.subscribe("cursor", () => {}, { limit: 10 });
  await alice.pubsub.subscribe("cursor", () => {}, { limit: 2 });
  assert.deepEqual(rates(), [5, 10], "rates sent as subscriptions with limits 5, 10, 2 arrived");
  const free = await alice.pubsub.subscribe("cursor", () => {});
  assert.deepEqual(rates(), [5, 10, 0], "a subscription without a limit lifts the wire cap");
  await free.unsubscribe();
  await s10.unsubscribe();
  assert.deepEqual(rates(), [5, 10, 0, 10, 5], "unsubscribing brings the wire cap back down");
  await s5.unsubscribe();
  await alice.leave();
});

test("a burst beyond a subscription's limit drops the oldest of the window", async () => {
  const name = roomName("burst");
  const alice = await join(name, "alice");
  const bob = await join(name, "bob");
  const capped = inbox();
  const all = inbox();
  await alice.pubsub.subscribe("cursor", capped, { limit: 2 });
  await alice.pubsub.subscribe("cursor", all);
  for (let i = 1; i <= 6; i++) await bob.pubsub.publish("cursor", i, { persist: false });
  await all.next(6, "the uncapped subscription's six");
  // Two go at once (the burst), the ring of two keeps the newest: 5 and 6,
  // released at 2 a second.
  await capped.next(4, "the capped subscription's four", 3000);
  assert.deepEqual(capped.got.map((m) => m.payload), [1, 2, 5, 6]);
  await Promise.all([alice.leave(), bob.leave()]);
});

test("getHistory pages oldest-first with before, after, limit and from", async () => {
  const name = roomName("history");
  const alice = await join(name, "alice");
  const bob = await join(name, "bob");
  const empty = await alice.pubsub.getHistory("never-used");
  assert.deepEqual(empty, { messages: [], hasMore: false });
  const ids = [];
  for (let i = 0; i < 7; i++) ids.push((await (i % 2 ? bob : alice).pubsub.publish("chat", i)).id);
  let page = await alice.pubsub.getHistory("chat", { limit: 3 });
  assert.deepEqual(page.messages.map((m) => m.payload), [4, 5, 6]);
  assert.equal(page.hasMore, true);
  page = await alice.pubsub.getHistory("chat", { limit: 3, before: page.messages[0].id });
  assert.deepEqual(page.messages.map((m) => m.payload), [1, 2, 3]);
  page = await alice.pubsub.getHistory("chat", { limit: 3, before: page.messages[0].id });
  assert.deepEqual(page.messages.map((m) => m.payload), [0]);
  assert.equal(page.hasMore, false);
  page = await alice.pubsub.getHistory("chat", { after: ids[4] });
  assert.deepEqual(page.messages.map((m) => m.payload), [5, 6]);
  assert.equal(page.hasMore, false);
  page = await alice.pubsub.getHistory("chat", { from: ["bob"], limit: 2 });
  assert.deepEqual(page.messages.map((m) => m.payload), [3, 5]);
  assert.equal(page.hasMore, true, "hasMore of the filtered set");
  page = await alice.pubsub.getHistory("chat", { from: "bob", before: page.messages[0].id });
  assert.deepEqual(page.messages.map((m) => m.payload), [1]);
  await Promise.all([alice.leave(), bob.leave()]);
});

test("server errors keep their codes; only NETWORK_ERROR and RATE_LIMIT_EXCEEDED are retriable", async () => {
  const alice = await join(roomName("server-errors"), "alice");
  await rejects(alice.pubsub.publish("mods-only", 1), "PERMISSION_DENIED", false);
  await assert.rejects(alice.pubsub.publish("limited", 1), (e) => {
    assert.equal(e.code, "RATE_LIMIT_EXCEEDED");
    assert.equal(e.retriable, true);
    assert.equal(e.retryAfterMs, 1000);
    return true;
  });
  // The connection stays.
  assert.ok((await alice.pubsub.publish("chat", 1)).id);
  await alice.leave();
});

test("a publish whose reply is lost is retried with one idempotency key: one message", async () => {
  const name = roomName("retry");
  const WS = spy();
  const alice = await join(name, "alice", { WebSocket: WS });
  const bob = await join(name, "bob");
  const atBob = inbox();
  await bob.pubsub.subscribe("flaky", atBob);
  await control("/fault");
  const msg = await alice.pubsub.publish("flaky", { text: "once" });
  const publishes = WS.of("publish");
  assert.equal(publishes.length, 2, "publish frames: the first and its retry");
  assert.equal(publishes[0].idempotencyKey, publishes[1].idempotencyKey, "the retry's idempotency key");
  await alice.pubsub.publish("flaky", "after");
  await atBob.next(2, "bob's deliveries");
  assert.deepEqual(atBob.got.map((m) => m.id), [msg.id, atBob.got[1].id], "the retried message delivered once, with the id publish resolved with");
  const page = await bob.pubsub.getHistory("flaky");
  assert.deepEqual(page.messages.map((m) => m.payload), [{ text: "once" }, "after"], "history holds the retried message once");
  await Promise.all([alice.leave(), bob.leave()]);
});

test("after a server restart the room reconnects, subscribes again and fills the gap", async () => {
  const name = roomName("restart");
  // Attempts against the stopped server give up after 500 ms, so that the
  // reconnect comes within the publish's retries below.
  const alice = await join(name, "alice", { retryDelay: 200, connectTimeout: 500 });
  const bob = await join(name, "bob", { connectTimeout: 500 });
  const h = inbox();
  await alice.pubsub.subscribe("chat", h);
  await bob.pubsub.publish("chat", "before");
  await h.next(1, "the message before the restart");

  const reconnecting = event(alice, (ev) => ev.state === "reconnecting", "alice's reconnecting event");
  const back = event(alice, (ev) => ev.state === "connected" && ev.reconnected, "alice's reconnected event", 15000);
  const bobBack = event(bob, (ev) => ev.state === "connected" && ev.reconnected, "bob's reconnected event", 15000);
  await control("/stop");
  await reconnecting;
  assert.equal(alice.state, "reconnecting");
  // Published while the server is away, straight into the hub.
  await control(`/publish?room=${name}&topic=chat`, "missed 1");
  // Alice's own message from another device is in the gap too, and is
  // not handed to her handlers: a room never sees its own publishes.
  await control(`/publish?room=${name}&topic=chat&from=alice`, "alice elsewhere");
  await control(`/publish?room=${name}&topic=chat`, "missed 2");
  // A subscription made while away is in place once the room is back.
  const news = inbox();
  await within(alice.pubsub.subscribe("news", news), "a subscribe while away");
  // A publish while away waits for the reconnect, within its retries
  // (about 3 s here; the reconnect comes within a second of the start).
  const during = alice.pubsub.publish("chat", "mine, sent while away");
  await control("/start");
  const ev = await back;
  assert.deepEqual({ gapFilled: ev.gapFilled, filled: ev.filled }, { gapFilled: true, filled: 2 });
  await h.next(3, "the gap's messages");
  await within(during, "the publish made while away");
  await bobBack;
  await bob.pubsub.publish("chat", "live again");
  await h.next(4, "a live message after the reconnect");
  await bob.pubsub.publish("news", "extra");
  await news.next(1, "a message on the topic subscribed while away");
  assert.deepEqual(h.got.map((m) => m.payload), ["before", "missed 1", "missed 2", "live again"], "no own message, none twice");
  await Promise.all([alice.leave(), bob.leave()]);
});

test("handlers that throw do not stop deliveries; errors reach onError", async () => {
  const name = roomName("throw");
  const errors = [];
  const alice = await join(name, "alice", { onError: (e) => errors.push(e) });
  const bob = await join(name, "bob");
  const h = inbox();
  await alice.pubsub.subscribe("chat", () => { throw new Error("boom"); });
  await alice.pubsub.subscribe("chat", h);
  await bob.pubsub.publish("chat", 1);
  await h.next(1, "the second handler's delivery");
  assert.equal(errors.length, 1);
  assert.equal(errors[0].message, "boom");
  await Promise.all([alice.leave(), bob.leave()]);
});

test("a connection that goes silent (half-open) is noticed by a ping and replaced", async () => {
  const name = roomName("silent");
  const sockets = [];
  // Muffled loses every frame from the server once deaf is set: the network
  // went away without a close.
  class Muffled extends WebSocket {
    constructor(...args) { super(...args); sockets.push(this); }
    set onmessage(fn) { super.onmessage = (ev) => { if (!this.deaf) fn(ev); }; }
    get onmessage() { return super.onmessage; }
  }
  const alice = await join(name, "alice", { WebSocket: Muffled, pingInterval: 150 });
  const bob = await join(name, "bob");
  const h = inbox();
  await alice.pubsub.subscribe("chat", h);
  const lost = event(alice, (ev) => ev.state === "reconnecting", "alice's reconnecting event");
  const back = event(alice, (ev) => ev.state === "connected" && ev.reconnected, "alice's reconnected event");
  sockets[0].deaf = true;
  await bob.pubsub.publish("chat", "while alice hears nothing");
  const ev = await lost;
  assert.match(ev.error.message, /ping/, "the reconnecting event's error");
  const ok = await back;
  assert.equal(ok.gapFilled, true);
  await h.next(1, "the message sent while the connection was silent");
  assert.deepEqual(h.got.map((m) => m.payload), ["while alice hears nothing"]);
  assert.equal(sockets.length, 2, "sockets opened");
});

test("leave() while a reconnect re-subscribes closes the new connection and ends the room", async () => {
  const name = roomName("leave-resub");
  const sockets = [];
  let room;
  // LeaveOnResubscribe leaves the room as the second connection sends its
  // re-subscribe: the user leaves while the room is reconnecting.
  class LeaveOnResubscribe extends WebSocket {
    constructor(...args) { super(...args); sockets.push(this); }
    send(data) {
      if (sockets.length > 1 && this === sockets[1] && JSON.parse(data).type === "subscribe") room.leave();
      super.send(data);
    }
  }
  room = await join(name, "alice", { WebSocket: LeaveOnResubscribe });
  await room.pubsub.subscribe("chat", () => {});
  const states = [];
  room.onConnectionState((ev) => states.push(ev.state));
  const left = event(room, (ev) => ev.state === "disconnected", "the disconnected event of leave()");
  sockets[0].close(); // the connection drops: the room reconnects
  await left;
  assert.equal(sockets.length, 2, "sockets opened");
  if (sockets[1].readyState !== WebSocket.CLOSED) {
    await within(new Promise((res) => sockets[1].addEventListener("close", res)), "the close of the connection opened by the reconnect");
  }
  assert.equal(room.state, "disconnected", "state after leave()");
  assert.deepEqual(states.filter((s) => s === "connected"), [], "no connected event after leave()");
  await rejects(room.pubsub.publish("chat", "after leave"), "NOT_CONNECTED");
});

test("calls in flight when leave() is called reject with NOT_CONNECTED", async () => {
  const room = await join(roomName("leave-inflight"), "alice");
  const calls = [
    room.pubsub.subscribe("chat", () => {}),
    room.pubsub.publish("chat", "in flight"),
    room.pubsub.getHistory("chat"),
  ];
  await room.leave();
  const settled = await within(Promise.allSettled(calls), "the calls in flight to settle after leave()");
  assert.deepEqual(settled.map((r) => r.status === "rejected" ? r.reason.code : "fulfilled"),
    ["NOT_CONNECTED", "NOT_CONNECTED", "NOT_CONNECTED"], "subscribe, publish, getHistory");
});

test("a live message that arrives while a reconnect re-subscribes waits for the gap fill: nothing missed, in order", async () => {
  const name = roomName("resub-live");
  const sockets = [];
  let bob;
  // Staged: the first connection goes deaf, so alice misses a message; the
  // second one holds back its re-subscribe to "b" until a live message on
  // "a", re-subscribed just before, has arrived.
  class Staged extends WebSocket {
    constructor(...args) { super(...args); sockets.push(this); }
    set onmessage(fn) { super.onmessage = (ev) => { if (!this.deaf) fn(ev); }; }
    get onmessage() { return super.onmessage; }
    send(data) {
      const f = JSON.parse(data);
      if (this !== sockets[1] || f.type !== "subscribe" || f.topic !== "b") { super.send(data); return; }
      const arrived = new Promise((res) => this.addEventListener("message", (ev) => { if (String(ev.data).includes("live on a")) res(); }));
      within(bob.pubsub.publish("a", "live on a").then(() => arrived), "the live message on a at the reconnecting socket")
        .finally(() => super.send(data));
    }
  }
  const alice = await join(name, "alice", { WebSocket: Staged });
  bob = await join(name, "bob");
  const h = inbox();
  await alice.pubsub.subscribe("a", h);
  await alice.pubsub.subscribe("b", () => {});
  sockets[0].deaf = true;
  await bob.pubsub.publish("a", "missed on a");
  const back = event(alice, (ev) => ev.state === "connected" && ev.reconnected, "alice's reconnected event");
  sockets[0].close();
  await back;
  await h.next(2, "the missed and the live message on a");
  assert.deepEqual(h.got.map((m) => m.payload), ["missed on a", "live on a"], "gap before live, nothing twice");
});
