// Helpers of the plaza.js suite. TestPlazaJS (transport/network) runs it
// against a real server: PLAZA_URL is the server, PLAZA_CONTROL the control
// routes that restart it, publish from Go and inject faults.
import assert from "node:assert/strict";
import { Plaza } from "../plaza.js";

export const URL_ = process.env.PLAZA_URL;
export const CONTROL = process.env.PLAZA_CONTROL;
if (!URL_ || !CONTROL) throw new Error("PLAZA_URL and PLAZA_CONTROL are unset: run the suite with go test -run TestPlazaJS ./transport/network/");

let rooms = 0;
// roomName is a room of its own for each test.
export const roomName = (what) => `${what}-${process.pid}-${++rooms}`;

const joined = new Set();

// join joins room as the client id `as`, with fast reconnects.
export async function join(room, as, opts = {}) {
  const r = await Plaza.join(URL_, room, { token: as, reconnectMin: 50, reconnectMax: 200, retryDelay: 50, connectTimeout: 5000, ...opts });
  joined.add(r);
  return r;
}

// leaveAll leaves every room join joined.
export async function leaveAll() {
  await Promise.all([...joined].map((r) => r.leave()));
  joined.clear();
}

export async function control(path, body) {
  const resp = await fetch(CONTROL + path, {
    method: "POST", body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10000),
  }).catch((e) => { throw new Error(`control ${path}: no answer within 10 s: ${e.message}`, { cause: e }); });
  if (!resp.ok) throw new Error(`control ${path}: ${resp.status} ${await resp.text()}`);
  return resp.headers.get("content-type")?.includes("json") ? resp.json() : resp.text();
}

// within resolves with p, or rejects saying what was awaited after ms.
export function within(p, what, ms = 5000) {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms); }),
  ]);
}

// inbox collects messages; next(n) waits for the first n.
export function inbox() {
  const got = [];
  let waiters = [];
  const handler = (m) => {
    got.push(m);
    waiters = waiters.filter((w) => { if (got.length >= w.n) { w.res(); return false; } return true; });
  };
  handler.got = got;
  handler.next = (n, what = `${n} message(s)`, ms) => within(
    got.length >= n ? Promise.resolve() : new Promise((res) => waiters.push({ n, res })),
    `${what}; got ${got.length}: ${JSON.stringify(got.map((m) => m.payload))}`, ms).then(() => got.slice(0, n));
  return handler;
}

// rejects asserts that p rejects with a PlazaError of code.
export async function rejects(p, code, retriable = false) {
  await assert.rejects(p, (e) => {
    assert.equal(e.name, "PlazaError", `error ${e} is not a PlazaError`);
    assert.equal(e.code, code, `error ${e.message}`);
    assert.equal(e.retriable, retriable, `retriable of ${e.code}`);
    return true;
  });
}

// event waits for the room's connection state event that matches pred.
export function event(room, pred, what, ms = 10000) {
  let off;
  return within(new Promise((res) => {
    off = room.onConnectionState((ev) => { if (pred(ev)) res(ev); });
  }), what, ms).finally(() => off());
}
