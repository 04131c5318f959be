// encodePayload's depth and size checks against a structural reference and
// against the server, on random payloads (seeded, so a failure repeats).
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { encodePayload, MAX_PAYLOAD_DEPTH } from "../plaza.js";
import { join, leaveAll, roomName } from "./helpers.mjs";

afterEach(leaveAll);

// rand is a small seeded PRNG (mulberry32).
function rand(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Strings full of what a naive depth counter trips on.
const tricky = ['[', ']', '{', '}', '"', '\\', '\\"', '["', '"]', '{"a":[', 'é', '\u2028', 'x'];

function value(r, depth) {
  const s = () => Array.from({ length: 1 + Math.floor(r() * 4) }, () => tricky[Math.floor(r() * tricky.length)]).join("");
  if (depth === 0) return [s(), 1, true, null, 2.5][Math.floor(r() * 5)];
  return r() < 0.5 ? [value(r, depth - 1), s()] : { [s()]: value(r, depth - 1), k: s() };
}

const depthOf = (v) => (v !== null && typeof v === "object" ? 1 + Math.max(0, ...Object.values(v).map(depthOf)) : 0);

test("encodePayload: depth counted as the server counts it, strings skipped", async () => {
  const r = rand(42);
  const alice = await join(roomName("encode"), "alice");
  for (let i = 0; i < 120; i++) {
    const v = value(r, MAX_PAYLOAD_DEPTH - 4 + Math.floor(r() * 8));
    const want = depthOf(v) <= MAX_PAYLOAD_DEPTH;
    let ok = true;
    try { encodePayload(v); } catch (e) { assert.equal(e.code, "INVALID_PAYLOAD", e.message); ok = false; }
    assert.equal(ok, want, `payload of depth ${depthOf(v)}: ${JSON.stringify(v).slice(0, 120)}…`);
    if (ok && i % 4 === 0) {
      const m = await alice.pubsub.publish("chat", v); // the server agrees
      assert.deepEqual(m.payload, JSON.parse(JSON.stringify(v)));
    }
  }
});

test("encodePayload: the size limit is in UTF-8 bytes of the JSON", () => {
  for (const [ch, bytes] of [["a", 1], ["é", 2], ["€", 3], ["😀", 4]]) {
    const n = Math.floor((32 * 1024 - 2) / bytes); // the quotes take 2
    assert.equal(encodePayload(ch.repeat(n)).length > 0, true, `${n}×${ch}`);
    assert.throws(() => encodePayload(ch.repeat(n + 1)), (e) => e.code === "PAYLOAD_TOO_LARGE", `${n + 1}×${ch}`);
  }
});
