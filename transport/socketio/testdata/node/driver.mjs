// driver.mjs runs socket.io-client under Node for the Go tests of
// transport/socketio, which drive it over stdin and stdout, one JSON object
// a line:
//
//   node driver.mjs
//
// Commands (stdin):
//   {"op":"connect","id":"c1","url":"http://…","opts":{…io() options…}}
//   {"op":"emit","id":"c1","event":"subscribe","args":["orders.42"],"ack":true}
//   {"op":"drop","id":"c1"}     closes the connection under the socket, as a network failure would
//   {"op":"close","id":"c1"}    socket.close()
//   {"op":"reconnect","id":"c1"} socket.connect(), after a drop without automatic reconnection
//   {"op":"fetch","id":"f1","url":"http://…","init":{…fetch() init…}}
//   {"op":"swarm","id":"s","url":"http://…","n":200,"opts":{…},"channel":"…","event":"…","expect":500}
//   {"op":"report","id":"s"}
//
// Reports (stdout): {"type":"ready"} once, then for sockets
// {"id","type":"connect","recovered"}, {"id","type":"connect_error","message","data"},
// {"id","type":"disconnect","reason"}, {"id","type":"event","event","args"} for every
// event the server sends, {"id","type":"ack","event","args"}; for fetch
// {"id","type":"response","status","body"}; for a swarm {"id","type":"ready"} once
// all its sockets got "subscribed", and {"id","type":"report",…counts} once all
// got "expect" events of "event" (or on "report").
import { io } from "socket.io-client";
import { createInterface } from "node:readline";

const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const sockets = new Map();
const swarms = new Map();

function watch(id, socket) {
  socket.on("connect", () => out({ id, type: "connect", recovered: socket.recovered }));
  socket.on("connect_error", (e) => out({ id, type: "connect_error", message: e.message, data: e.data ?? null }));
  socket.on("disconnect", (reason) => out({ id, type: "disconnect", reason }));
  socket.onAny((event, ...args) => out({ id, type: "event", event, args }));
}

// A swarm is n sockets that each subscribe to one channel and check that
// the events of one name arrive as data {seq: 0, 1, 2, …}, each once.
function swarm(cmd) {
  const s = { cmd, subscribed: 0, done: 0, clients: [], reported: false };
  swarms.set(cmd.id, s);
  for (let i = 0; i < cmd.n; i++) {
    const c = { next: 0, received: 0, dupes: 0, outOfOrder: 0, errors: [] };
    s.clients.push(c);
    const socket = io(cmd.url, { ...cmd.opts, forceNew: true });
    c.socket = socket;
    socket.on("connect_error", (e) => c.errors.push(e.message));
    socket.on("subscribed", () => {
      if (++s.subscribed === cmd.n) out({ id: cmd.id, type: "ready" });
    });
    socket.on(cmd.event, (data) => {
      c.received++;
      const seq = data && data.seq;
      if (seq < c.next) c.dupes++;
      else if (seq > c.next) c.outOfOrder++;
      c.next = Math.max(c.next, seq + 1);
      if (c.received === cmd.expect && ++s.done === cmd.n) report(cmd.id);
    });
    socket.emit("subscribe", cmd.channel);
  }
}

function report(id) {
  const s = swarms.get(id);
  if (!s || s.reported) return;
  s.reported = true;
  const sum = (f) => s.clients.reduce((n, c) => n + f(c), 0);
  out({
    id, type: "report", clients: s.clients.length,
    complete: s.clients.filter((c) => c.received === s.cmd.expect && c.dupes === 0 && c.outOfOrder === 0).length,
    received: sum((c) => c.received), dupes: sum((c) => c.dupes), outOfOrder: sum((c) => c.outOfOrder),
    errors: s.clients.flatMap((c) => c.errors).slice(0, 5),
  });
  for (const c of s.clients) c.socket.close();
}

async function run(cmd) {
  const socket = sockets.get(cmd.id);
  switch (cmd.op) {
    case "connect": {
      const s = io(cmd.url, { ...cmd.opts, forceNew: true });
      sockets.set(cmd.id, s);
      watch(cmd.id, s);
      break;
    }
    case "emit":
      if (cmd.ack) socket.emit(cmd.event, ...(cmd.args || []), (...args) => out({ id: cmd.id, type: "ack", event: cmd.event, args }));
      else socket.emit(cmd.event, ...(cmd.args || []));
      break;
    case "drop":
      socket.io.engine.close();
      break;
    case "close":
      socket.close();
      break;
    case "reconnect":
      socket.connect();
      break;
    case "fetch": {
      try {
        const resp = await fetch(cmd.url, cmd.init);
        out({ id: cmd.id, type: "response", status: resp.status, headers: Object.fromEntries(resp.headers), body: await resp.text() });
      } catch (e) {
        out({ id: cmd.id, type: "response", status: 0, body: String(e) });
      }
      break;
    }
    case "swarm":
      swarm(cmd);
      break;
    case "report":
      report(cmd.id);
      break;
    case "exit":
      for (const s of sockets.values()) s.close();
      process.exit(0);
  }
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (line.trim() === "") return;
  run(JSON.parse(line)).catch((e) => out({ type: "crash", message: String(e && e.stack || e) }));
});
lines.on("close", () => {
  for (const s of sockets.values()) s.close();
  for (const s of swarms.values()) for (const c of s.clients) c.socket.close();
  process.exit(0);
});
out({ type: "ready" });
