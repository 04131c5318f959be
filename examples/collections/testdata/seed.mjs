// Runs the JavaScript example of the seed's realtime documentation against
// a running examples/collections server, then checks the rest of the
// protocol with the same WebSocket API a browser has. Node 20 needs
// --experimental-websocket for the global WebSocket; Node 22 has it.
//
//   BASE=http://127.0.0.1:8000 TOKEN=… EXPIRING=… BAD='{"wrong key":"…"}' node seed.mjs
//
// It prints "ok <check>" for each check and exits 1 at the first failure.
const { BASE, TOKEN, EXPIRING } = process.env;
const BAD = JSON.parse(process.env.BAD || "{}");
const WS = BASE.replace(/^http/, "ws") + "/api/v1/realtime/ws";

const fail = (msg) => {
  console.error("FAIL " + msg);
  process.exit(1);
};
setTimeout(() => fail("the checks took longer than 60 s"), 60000).unref();

function within(ms, what, promise) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error("timed out waiting for " + what)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

// inbox collects a socket's messages and close, for awaiting in order.
function inbox(ws) {
  const queue = [];
  let wake = null;
  let closed = null;
  ws.addEventListener("message", (e) => {
    queue.push(JSON.parse(e.data));
    if (wake) wake();
  });
  ws.addEventListener("close", (e) => {
    closed = { code: e.code, reason: e.reason };
    if (wake) wake();
  });
  const opened = new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve);
    ws.addEventListener("error", () => reject(new Error("WebSocket error before open")));
  });
  return {
    opened,
    send(frame) {
      ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
    },
    async next(what, ms = 5000) {
      return within(ms, what, (async () => {
        while (queue.length === 0) {
          if (closed) throw new Error(`closed (${closed.code} ${closed.reason}) while waiting for ${what}`);
          await new Promise((r) => (wake = r));
        }
        return queue.shift();
      })());
    },
    async closed(what, ms = 5000) {
      return within(ms, what, (async () => {
        while (!closed) await new Promise((r) => (wake = r));
        return closed;
      })());
    },
  };
}

async function http(method, path, body) {
  const res = await fetch(BASE + path, {
    method,
    headers: { Authorization: "Bearer " + TOKEN, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) fail(`${method} ${path} → ${res.status} ${JSON.stringify(json)}`);
  return json;
}

function expect(cond, msg) {
  if (!cond) fail(msg);
}

// 7, started first: a connection whose token expires within seconds is
// closed at its expiry; its close is checked after the other checks.
const expiring = inbox(new WebSocket(`${WS}?token=${EXPIRING}`));
expiring.opened.then(() => expiring.send({ action: "subscribe", collection: "posts" }));

// 1. The seed's example, as documented (its token and host filled in).
{
  const logs = [];
  const log = console.log;
  console.log = (...args) => logs.push(args);
  const saw = (text, pred = () => true) => logs.some((l) => l[0] === text && pred(l));

  // --- the seed's example ---
  const token = TOKEN;
  const ws = new WebSocket(`${WS}?token=${token}`);
  ws.onopen = () => {
    // Subscribe to posts collection
    ws.send(JSON.stringify({
      action: "subscribe",
      collection: "posts",
      operations: ["create", "update", "delete"]
    }));
  };
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "posts.create") {
      console.log("New post created:", message.data);
    }
    if (message.type === "heartbeat") {
      console.log("Heartbeat received");
    }
  };
  ws.onerror = (error) => {
    console.error("WebSocket error:", error);
  };
  ws.onclose = () => {
    console.log("WebSocket connection closed");
  };
  // --- end of the seed's example ---

  const subscribed = new Promise((resolve) =>
    ws.addEventListener("message", (e) => JSON.parse(e.data).status === "subscribed" && resolve()));
  await within(5000, "the seed example's subscription", subscribed);
  const created = await http("POST", "/api/v1/records/posts", { title: "New Post" });
  const until = async (what, cond) => {
    const deadline = Date.now() + 5000;
    while (!cond()) {
      if (Date.now() > deadline) fail("timed out waiting for " + what);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await until("New post created", () => saw("New post created:", (l) => l[1].id === created.id && l[1].title === "New Post"));
  await until("Heartbeat received", () => saw("Heartbeat received"));
  ws.close();
  await until("WebSocket connection closed", () => saw("WebSocket connection closed"));
  console.log = log;
  console.log("ok seed example: create event and heartbeat");
}

const connect = async (token = TOKEN) => {
  const box = inbox(new WebSocket(`${WS}?token=${token}`));
  await within(5000, "the connection", box.opened);
  return box;
};
const subscribe = async (box, collection, operations) => {
  box.send(operations ? { action: "subscribe", collection, operations } : { action: "subscribe", collection });
  const m = await box.next("the subscribe reply");
  expect(m.status === "subscribed" && m.collection === collection, "subscribe reply " + JSON.stringify(m));
};
// nextEvent skips heartbeats.
const nextEvent = async (box, what) => {
  for (;;) {
    const m = await box.next(what);
    if (m.type !== "heartbeat") return m;
  }
};

// 2. Create, update and delete over HTTP; the operations filter.
{
  const all = await connect();
  const creates = await connect();
  await subscribe(all, "posts");
  await subscribe(creates, "posts", ["create"]);
  const rec = await http("POST", "/api/v1/records/posts", { title: "Filtered" });
  await http("PATCH", "/api/v1/records/posts/" + rec.id, { title: "Edited" });
  await http("DELETE", "/api/v1/records/posts/" + rec.id);
  const second = await http("POST", "/api/v1/records/posts", { title: "Second" });
  const want = [["posts.create", rec.id], ["posts.update", rec.id], ["posts.delete", rec.id], ["posts.create", second.id]];
  for (const [type, id] of want) {
    const m = await nextEvent(all, type);
    expect(m.type === type && m.data.id === id, `want ${type} of ${id}, got ${JSON.stringify(m)}`);
    expect(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(m.timestamp), "timestamp " + m.timestamp);
  }
  for (const id of [rec.id, second.id]) {
    const m = await nextEvent(creates, "a create");
    expect(m.type === "posts.create" && m.data.id === id, `subscriber to [create] got ${JSON.stringify(m)}`);
  }
  console.log("ok create/update/delete events, operations filter");

  // 3. ping → pong, as a frame and as bare text.
  for (const frame of [{ action: "ping" }, "ping"]) {
    all.send(frame);
    const m = await nextEvent(all, "pong");
    expect(m.type === "pong", "pong " + JSON.stringify(m));
  }
  console.log("ok ping → pong");

  // 4. An unknown action gets an error and the connection stays usable.
  all.send({ action: "jump" });
  const e = await nextEvent(all, "the error");
  expect(e.type === "error" && e.code === "INVALID_REQUEST", "error " + JSON.stringify(e));
  all.send("ping");
  expect((await nextEvent(all, "pong after an error")).type === "pong", "no pong after an error");
  console.log("ok errors keep the connection");
}

// 5. At most 100 subscriptions.
{
  const box = await connect();
  for (let i = 0; i < 100; i++) box.send({ action: "subscribe", collection: "c" + i });
  for (let i = 0; i < 100; i++) {
    const m = await nextEvent(box, "subscription " + i);
    expect(m.status === "subscribed", `subscription ${i}: ${JSON.stringify(m)}`);
  }
  box.send({ action: "subscribe", collection: "c100" });
  const m = await nextEvent(box, "the 101st reply");
  expect(m.type === "error" && m.code === "TOO_MANY_SUBSCRIPTIONS", "101st subscription: " + JSON.stringify(m));
  console.log("ok 101st subscription refused");
}

// 6. Refused tokens close with 4001 and a reason.
for (const [name, token] of Object.entries(BAD)) {
  const box = inbox(new WebSocket(`${WS}?token=${token}`));
  const c = await box.closed("the close of a " + name + " token");
  expect(c.code === 4001 && c.reason.startsWith("UNAUTHENTICATED"), `${name} token: close ${c.code} ${c.reason}`);
  console.log(`ok ${name} token refused: ${c.reason}`);
}

// 7. The connection closes when its token expires.
{
  const box = expiring;
  const c = await box.closed("the close at the token's expiry", 10000);
  const m = await box.next("the subscribe reply before the expiry");
  expect(m.status === "subscribed", "expiring connection: " + JSON.stringify(m));
  expect(c.code === 4003 && c.reason === "UNAUTHENTICATED: token expired", `at expiry: close ${c.code} ${c.reason}`);
  console.log("ok token expiry closes with 4003");
}
process.exit(0);
