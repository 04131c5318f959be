// plaza.js — the browser and Node client of a Plaza hub: room.pubsub over
// the WebSocket frame protocol of GET /{room}/ws (package network's
// documentation). An ES module with no dependencies and no build step:
//
//   import { Plaza } from "/plaza.js"; // served by network.Server
//   const room = await Plaza.join("ws://127.0.0.1:8080", "lobby", { token });
//   const msg = await room.pubsub.publish("chat", { text: "hi" });
//   const sub = await room.pubsub.subscribe("chat", (m) => console.log(m.from, m.payload));
//   const page = await room.pubsub.getHistory("chat", { limit: 10 });
//   await sub.unsubscribe();
//   await room.leave();
//
// It behaves as the Go pubsub.Room: validation before any I/O, no self-echo,
// one wire subscription per topic whatever the number of handlers, rate caps
// that keep the newest messages of a burst, NETWORK_ERROR retried with one
// idempotency key, and reconnection with backoff, re-subscription and gap
// fill from history.

/** Limits, as in package pubsub. */
export const MAX_TOPIC_LEN = 128;
export const MAX_PAYLOAD_BYTES = 32 * 1024;
export const MAX_PAYLOAD_DEPTH = 64;
export const MAX_HISTORY_LIMIT = 50;
export const DEFAULT_HISTORY_LIMIT = 25;
const MAX_RECIPIENTS = 256;
const MAX_CLIENT_ID_BYTES = 128;
const MAX_METADATA_BYTES = 4096;
const SNOWFLAKE_EPOCH = 1288834974657n; // ms, as github.com/bwmarrin/snowflake

const RETRIABLE = new Set(["NETWORK_ERROR", "RATE_LIMIT_EXCEEDED"]);
// Codes with which the server refuses a client for good: no reconnect.
const FATAL = new Set(["UNAUTHENTICATED", "PERMISSION_DENIED"]);
const TOPIC_RE = /^[a-zA-Z0-9_\-:.]+$/;
const ID_RE = /^[0-9]{1,19}$/;
const enc = new TextEncoder();

/**
 * PlazaError is how every call rejects: code is one of the codes of
 * package pubsub (the same on every side), retriable says whether trying
 * again later can succeed, retryAfterMs comes with RATE_LIMIT_EXCEEDED.
 */
export class PlazaError extends Error {
  constructor(code, message, { retryAfterMs, cause } = {}) {
    super(message ? `${code}: ${message}` : code, cause === undefined ? undefined : { cause });
    this.name = "PlazaError";
    this.code = code;
    this.retriable = RETRIABLE.has(code);
    if (retryAfterMs) this.retryAfterMs = retryAfterMs;
  }
}

const fail = (code, message, extra) => new PlazaError(code, message, extra);

/** checkTopic throws INVALID_TOPIC_NAME unless name is 1 to 128 of [a-zA-Z0-9_-:.]. */
export function checkTopic(name) {
  if (typeof name !== "string" || name === "") throw fail("INVALID_TOPIC_NAME", "topic name is empty");
  if (name.length > MAX_TOPIC_LEN) throw fail("INVALID_TOPIC_NAME", `topic name is ${name.length} characters, more than ${MAX_TOPIC_LEN}`);
  if (!TOPIC_RE.test(name)) {
    const i = [...name].findIndex((c) => !TOPIC_RE.test(c));
    throw fail("INVALID_TOPIC_NAME", `topic name ${JSON.stringify(name)} has ${JSON.stringify([...name][i])} at offset ${i}; allowed are a-z A-Z 0-9 _ - : .`);
  }
}

// depthOK reports whether the JSON text s nests arrays and objects at most
// max levels (strings skipped), as the server counts.
function depthOK(s, max) {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 34) { // string: skip to its closing quote
      for (i++; i < s.length; i++) {
        const d = s.charCodeAt(i);
        if (d === 92) i++;
        else if (d === 34) break;
      }
    } else if (c === 123 || c === 91) {
      if (++depth > max) return false;
    } else if (c === 125 || c === 93) depth--;
  }
  return true;
}

/**
 * encodePayload returns the JSON of payload, or throws INVALID_PAYLOAD (not
 * JSON-serializable, or nested more than 64 levels) or PAYLOAD_TOO_LARGE
 * (more than 32 KiB of UTF-8).
 */
export function encodePayload(payload) {
  let s;
  try {
    s = JSON.stringify(payload, (_k, v) => {
      if (typeof v === "number" && !Number.isFinite(v)) throw fail("INVALID_PAYLOAD", `${v} is not a JSON number`);
      return v;
    });
  } catch (e) {
    if (e instanceof PlazaError) throw e;
    throw fail("INVALID_PAYLOAD", `payload is not JSON-serializable: ${e && e.message}`, { cause: e });
  }
  if (s === undefined) throw fail("INVALID_PAYLOAD", `payload of type ${typeof payload} is not JSON-serializable`);
  const n = enc.encode(s).length;
  if (n > MAX_PAYLOAD_BYTES) throw fail("PAYLOAD_TOO_LARGE", `payload is ${n} bytes of JSON, more than ${MAX_PAYLOAD_BYTES}`);
  if (!depthOK(s, MAX_PAYLOAD_DEPTH)) throw fail("INVALID_PAYLOAD", `payload nests arrays and objects more than ${MAX_PAYLOAD_DEPTH} levels deep`);
  return s;
}

function checkClientID(id, what) {
  if (typeof id !== "string" || id === "" || enc.encode(id).length > MAX_CLIENT_ID_BYTES || /[\x00-\x1f\x7f]/.test(id)) {
    throw fail("INVALID_REQUEST", `${what}: a client id must be 1 to ${MAX_CLIENT_ID_BYTES} bytes without control characters`);
  }
}

function checkPublishOpts(opts) {
  const out = {};
  if (opts.persist !== undefined) {
    if (typeof opts.persist !== "boolean") throw fail("INVALID_REQUEST", "persist must be a boolean");
    out.persist = opts.persist;
  }
  if (opts.to !== undefined) {
    if (!Array.isArray(opts.to)) throw fail("INVALID_REQUEST", "to must be an array of client ids");
    if (opts.to.length > MAX_RECIPIENTS) throw fail("INVALID_REQUEST", `${opts.to.length} recipients, more than ${MAX_RECIPIENTS}`);
    opts.to.forEach((id) => checkClientID(id, "to"));
    if (opts.to.length) out.to = [...opts.to];
  }
  if (opts.metadata !== undefined) {
    if (opts.metadata === null || typeof opts.metadata !== "object" || Array.isArray(opts.metadata)) throw fail("INVALID_PAYLOAD", "metadata must be an object of strings");
    let n = 0;
    for (const [k, v] of Object.entries(opts.metadata)) {
      if (k === "") throw fail("INVALID_PAYLOAD", "metadata has an empty key");
      if (typeof v !== "string") throw fail("INVALID_PAYLOAD", `metadata ${JSON.stringify(k)} is not a string; metadata never nests`);
      n += enc.encode(k).length + enc.encode(v).length;
    }
    if (n > MAX_METADATA_BYTES) throw fail("PAYLOAD_TOO_LARGE", `metadata is ${n} bytes, more than ${MAX_METADATA_BYTES}`);
    out.metadata = { ...opts.metadata };
  }
  return out;
}

function checkHistoryOpts(opts) {
  const req = {};
  const given = (k) => opts[k] !== undefined && opts[k] !== null;
  if (given("limit")) {
    const l = opts.limit;
    if (!Number.isInteger(l) || l <= 0 || l > MAX_HISTORY_LIMIT) throw fail("INVALID_LIMIT", `limit ${l} is outside 1 to ${MAX_HISTORY_LIMIT}`);
    req.limit = l;
  }
  if (given("before") && given("after")) throw fail("INVALID_HISTORY_OPTS", "before and after are both set; pass one");
  for (const k of ["before", "after"]) {
    if (!given(k)) continue;
    const id = String(opts[k]);
    if (!ID_RE.test(id) || BigInt(id) === 0n || BigInt(id) > 9223372036854775807n) throw fail("INVALID_HISTORY_OPTS", `${k}: invalid message id ${JSON.stringify(opts[k])}`);
    req[k] = id;
  }
  if (given("from")) {
    const from = Array.isArray(opts.from) ? opts.from : [opts.from];
    from.forEach((id) => checkClientID(id, "from"));
    if (from.length) req.from = [...from];
  }
  return req;
}

// idAt is the largest id a hub cannot have assigned at or after ms: the gap
// of a topic that has delivered nothing yet starts there.
const idAt = (ms) => ((BigInt(Math.floor(ms)) - SNOWFLAKE_EPOCH) << 22n) - 1n;

const jitter = (d) => d / 2 + Math.random() * (d / 2);
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// RateCap is pubsub's rate cap (internal/ratecap): a token bucket of rate r
// and burst ceil(r); messages without a token wait in a ring of ceil(r)
// slots, and when the ring is full the oldest waiting message is dropped. A
// burst beyond the cap thus keeps the newest second's worth of messages.
class RateCap {
  constructor(rate, now) {
    this.rate = rate;
    this.burst = Math.max(1, Math.ceil(rate));
    this.tokens = this.burst;
    this.at = now;
    this.held = [];
    this.dropped = 0;
  }
  refill(now) {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
  }
  take(now) {
    this.refill(now);
    if (this.tokens >= 1) { this.tokens -= 1; return true; }
    return false;
  }
  // offer returns true if m may go now; otherwise m is held.
  offer(now, m) {
    if (this.held.length === 0 && this.take(now)) return true;
    if (this.held.length === this.burst) { this.held.shift(); this.dropped++; }
    this.held.push(m);
    return false;
  }
  release(now) {
    const out = [];
    while (this.held.length && this.take(now)) out.push(this.held.shift());
    return out;
  }
  // next is the ms until the next held message may go, or -1.
  next(now) {
    if (!this.held.length) return -1;
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.rate) * 1000);
  }
}

function wsURL(url, room) {
  let base = String(url).replace(/\/+$/, "");
  if (base.startsWith("http://")) base = "ws://" + base.slice(7);
  else if (base.startsWith("https://")) base = "wss://" + base.slice(8);
  return `${base}/${room}/ws`;
}

// Connection is one WebSocket of the frame protocol, from the auth frame
// to its close. It never reconnects: the Room does.
class Connection {
  constructor(WS, url, token, requestTimeout, connectTimeout) {
    this.pending = new Map();
    this.seq = 0;
    this.requestTimeout = requestTimeout;
    this.onMessages = () => {};
    this.onClose = () => {};
    this.closed = false;
    this.opened = new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WS(url);
      } catch (e) {
        reject(fail("NETWORK_ERROR", `cannot open ${url}: ${e && e.message}`, { cause: e }));
        return;
      }
      this.ws = ws;
      let welcomed = false;
      // A handshake or welcome that never comes must not stall reconnects.
      const timer = setTimeout(() => {
        this.closed = true;
        reject(fail("NETWORK_ERROR", `no welcome from ${url} within ${connectTimeout} ms`));
        try { ws.close(); } catch { /* not open yet */ }
      }, connectTimeout);
      ws.onopen = () => ws.send(JSON.stringify({ auth: token ?? "" }));
      ws.onmessage = (ev) => {
        let f;
        try {
          f = JSON.parse(typeof ev.data === "string" ? ev.data : String(ev.data));
        } catch {
          return; // the server sends only JSON; skip what is not
        }
        if (!welcomed) {
          if (this.closed) return;
          if (f.type === "welcome") { welcomed = true; clearTimeout(timer); resolve(f); return; }
          if (f.type === "error" && f.error) { this.lastError = f.error; }
          return;
        }
        this.seen = Date.now();
        this.frame(f);
      };
      ws.onerror = () => {};
      ws.onclose = (ev) => {
        clearTimeout(timer);
        const we = this.lastError;
        const err = we
          ? fail(we.code, we.message, { retryAfterMs: we.retryAfterMs })
          : fail("NETWORK_ERROR", `connection closed (${ev.code}${ev.reason ? " " + ev.reason : ""})`);
        if (!welcomed) {
          this.closed = true;
          reject(err);
        } else this.lose(err);
      };
    });
  }
  // lose ends the connection once: pending requests fail with
  // NETWORK_ERROR and onClose hears why.
  lose(err) {
    if (this.lost) return;
    this.lost = true;
    this.closed = true;
    this.err = err;
    clearInterval(this.beat);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(fail("NETWORK_ERROR", `connection lost before the reply: ${err.message}`, { cause: err }));
    }
    this.pending.clear();
    this.onClose(err);
  }
  // watch checks every interval ms that the server is still there: when
  // nothing arrived for a whole interval it sends a ping, and a ping with
  // no pong within the interval ends the connection, which a half-open
  // network would otherwise keep forever. Browsers answer the server's
  // WebSocket pings but cannot see them, so the client asks for itself.
  watch(interval) {
    this.seen = Date.now();
    this.beat = setInterval(() => {
      if (this.closed || this.pinging || Date.now() - this.seen < interval) return;
      this.pinging = true;
      this.request({ type: "ping" }, undefined, interval).then(
        () => { this.pinging = false; },
        (err) => {
          this.pinging = false;
          if (this.closed) return;
          this.lose(fail("NETWORK_ERROR", `the server did not answer a ping: ${err.message}`, { cause: err }));
          try { this.ws.close(); } catch { /* closing anyway */ }
        });
    }, interval);
  }
  frame(f) {
    if (f.type === "messages") {
      if (Array.isArray(f.messages)) this.onMessages(f.messages);
      return;
    }
    if (f.type === "error" && f.id === undefined) {
      this.lastError = f.error; // the close follows
      return;
    }
    const p = f.id !== undefined && this.pending.get(f.id);
    if (!p) return;
    this.pending.delete(f.id);
    clearTimeout(p.timer);
    if (f.type === "error") {
      const e = f.error || {};
      p.reject(fail(e.code || "INTERNAL_ERROR", e.message, { retryAfterMs: e.retryAfterMs }));
    } else p.resolve(f);
  }
  // request sends frame with a fresh id and resolves with the reply. A
  // payload, already encoded, is spliced in as it is, so what was measured
  // is what is sent.
  request(frame, payload, timeout = this.requestTimeout) {
    if (this.closed) return Promise.reject(fail("NETWORK_ERROR", "connection lost"));
    const id = String(++this.seq);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(fail("NETWORK_ERROR", `no reply to ${frame.type} within ${timeout} ms`));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer });
      try {
        const text = JSON.stringify({ v: 1, id, ...frame });
        this.ws.send(payload === undefined ? text : `${text.slice(0, -1)},"payload":${payload}}`);
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(fail("NETWORK_ERROR", `send failed: ${e && e.message}`, { cause: e }));
      }
    });
  }
  close() {
    this.closed = true;
    clearInterval(this.beat);
    try { this.ws.close(1000, "leave"); } catch { /* already closed */ }
  }
}

/**
 * Room is a joined room; its pubsub member publishes, subscribes and reads
 * history. Create one with Plaza.join.
 */
class Room {
  constructor(url, name, opts) {
    this.name = name;
    this.url = wsURL(url, name);
    this.opts = opts;
    this.WS = opts.WebSocket;
    this.topics = new Map(); // topic → {subs, wireRate, lastSeen (BigInt), fill (BigInt|undefined)}
    this.listeners = new Set();
    if (opts.onConnectionState) this.listeners.add(opts.onConnectionState);
    this.state = "connecting";
    this.conn = null;
    this.left = false;
    this.keyPrefix = Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
    this.keySeq = 0;
    this.wire = Promise.resolve(); // serializes wire subscribe/unsubscribe
    this.waiters = new Set(); // resolved when a connection is live again
    this.holding = new Set();
    this.timer = null;
    this.pubsub = new PubSub(this);
  }

  /** clientId is the identity the server gave this room: the from of what it publishes. */
  get clientId() { return this.welcome?.clientId; }

  /**
   * onConnectionState registers fn for connection state events and returns
   * a function that removes it. See ConnectionStateEvent in plaza.d.ts.
   */
  onConnectionState(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(ev) {
    this.state = ev.state;
    for (const fn of [...this.listeners]) {
      try { fn(ev); } catch (e) { this.report(e); }
    }
  }

  report(err) {
    if (this.opts.onError) {
      try { this.opts.onError(err); } catch { /* an error handler's error has nowhere to go */ }
    }
  }

  async connect() {
    const c = new Connection(this.WS, this.url, this.opts.token, this.opts.requestTimeout, this.opts.connectTimeout);
    const welcome = await c.opened;
    c.onMessages = (ms) => { for (const m of ms) this.deliver(m, false); };
    this.welcome = welcome;
    return c;
  }

  attach(c) {
    this.conn = c;
    c.onClose = (err) => this.lost(c, err);
    c.watch(this.opts.pingInterval || this.welcome?.heartbeatMs || 30000);
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  lost(c, err) {
    if (this.conn !== c || this.left) return;
    this.conn = null;
    if (FATAL.has(err.code)) {
      this.stop(err);
      return;
    }
    this.emit({ state: "reconnecting", attempt: 0, error: err });
    this.reconnect();
  }

  stop(err) {
    this.left = true;
    this.stopErr = err;
    for (const w of this.waiters) w();
    this.waiters.clear();
    this.emit({ state: "disconnected", error: err });
    this.report(err);
  }

  async reconnect() {
    let delay = this.opts.reconnectMin;
    for (let attempt = 1; !this.left; attempt++) {
      await sleep(jitter(delay));
      delay = Math.min(delay * 2, this.opts.reconnectMax);
      if (this.left) return;
      let c;
      try {
        c = await this.connect();
      } catch (err) {
        if (FATAL.has(err.code)) { this.stop(err); return; }
        this.emit({ state: "reconnecting", attempt, error: err });
        continue;
      }
      if (this.left) { c.close(); return; }
      // Live messages wait until the gap is filled, so that handlers get
      // every topic in id order and nothing twice: from the first
      // re-subscribe on, since a topic re-subscribed early may deliver
      // before the last one is confirmed.
      const held = [];
      c.onMessages = (ms) => held.push(...ms);
      const ok = await this.resubscribe(c);
      if (this.left) { c.close(); return; } // left while re-subscribing
      if (!ok) { c.close(); continue; }
      this.attach(c);
      let gap = { gapFilled: true, filled: 0 };
      if (this.opts.gapFill) gap = await this.gapFill(c);
      else gap.gapFilled = false;
      for (const m of held) this.deliver(m, false);
      c.onMessages = (ms) => { for (const m of ms) this.deliver(m, false); };
      if (this.conn === c) this.emit({ state: "connected", reconnected: true, ...gap });
      return;
    }
  }

  // resubscribe subscribes c to every wire topic; false if c was lost.
  async resubscribe(c) {
    let ok = true;
    const run = this.wire.then(async () => {
      for (const [topic, wt] of this.topics) {
        try {
          await c.request({ type: "subscribe", topic, ...(wt.wireRate ? { rate: wt.wireRate } : {}) });
          wt.onWire = true;
        } catch (err) {
          if (err.code === "NETWORK_ERROR" || c.closed) { ok = false; return; }
          this.report(fail(err.code, `re-subscribing to ${topic}: ${err.message}`, { cause: err }));
        }
      }
    });
    this.wire = run.catch(() => {});
    await run;
    return ok && !c.closed;
  }

  // gapFill hands the handlers the persisted messages each topic received
  // since the last one the room saw, merged across topics in id order, once
  // each, leaving out the room's own.
  async gapFill(c) {
    const cursors = [];
    for (const [topic, wt] of this.topics) cursors.push({ topic, page: [], more: true, after: wt.lastSeen });
    let gapFilled = true;
    let filled = 0;
    const fetchPage = async (cur) => {
      try {
        const f = await c.request({ type: "history", topic: cur.topic, after: cur.after.toString(), limit: MAX_HISTORY_LIMIT });
        cur.page = Array.isArray(f.messages) ? f.messages : [];
        cur.more = !!f.hasMore && cur.page.length > 0;
      } catch (err) {
        gapFilled = false;
        cur.page = [];
        cur.more = false;
        this.report(fail(err.code, `gap fill of ${cur.topic}: ${err.message}`, { cause: err }));
      }
    };
    for (;;) {
      let next = null;
      for (const cur of cursors) {
        if (!cur.page.length && cur.more) await fetchPage(cur);
        if (cur.page.length && (!next || BigInt(cur.page[0].id) < BigInt(next.page[0].id))) next = cur;
      }
      if (!next || this.left) break;
      const m = next.page.shift();
      const id = BigInt(m.id);
      next.after = id;
      const wt = this.topics.get(next.topic);
      if (wt) wt.fill = id;
      if (m.from === this.clientId) continue;
      filled++;
      this.deliver(m, true);
    }
    return { gapFilled, filled };
  }

  deliver(m, fromHistory) {
    if (this.left || !m || typeof m.topic !== "string") return;
    const wt = this.topics.get(m.topic);
    if (!wt) return;
    let id;
    try { id = BigInt(m.id); } catch { return; }
    if (!fromHistory && wt.fill !== undefined) {
      if (id <= wt.fill && m.persisted) return; // already handed out by gap fill
      if (id > wt.fill) wt.fill = undefined;
    }
    if (id > wt.lastSeen) wt.lastSeen = id;
    const now = Date.now();
    for (const s of [...wt.subs]) {
      if (s.cap && !s.cap.offer(now, m)) {
        this.holding.add(s);
        continue;
      }
      this.call(s, m);
    }
    this.arm();
  }

  call(s, m) {
    if (s.gone || this.left) return;
    try {
      s.handler(m);
    } catch (e) {
      this.report(e);
    }
  }

  release() {
    this.timer = null;
    const now = Date.now();
    for (const s of [...this.holding]) {
      for (const m of s.cap.release(now)) this.call(s, m);
      if (!s.cap.held.length || s.gone) this.holding.delete(s);
    }
    this.arm();
  }

  arm() {
    if (!this.holding.size || this.left) return;
    const now = Date.now();
    let next = -1;
    for (const s of this.holding) {
      const d = s.cap.next(now);
      if (d >= 0 && (next < 0 || d < next)) next = d;
    }
    if (next < 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.release(), next);
  }

  // live returns the connection, waiting up to wait ms for a reconnect.
  async live(wait) {
    if (this.left) throw this.notConnected();
    if (this.conn) return this.conn;
    let done;
    const ready = new Promise((res) => { done = res; this.waiters.add(res); });
    const t = new Promise((res) => setTimeout(res, wait, "timeout"));
    const r = await Promise.race([ready, t]);
    this.waiters.delete(done);
    if (this.left) throw this.notConnected();
    if (r === "timeout" || !this.conn) throw fail("NETWORK_ERROR", `room ${JSON.stringify(this.name)} is reconnecting`);
    return this.conn;
  }

  notConnected() {
    return this.stopErr
      ? fail("NOT_CONNECTED", `room stopped: ${this.stopErr.message}`, { cause: this.stopErr })
      : fail("NOT_CONNECTED", `room ${JSON.stringify(this.name)}: left`);
  }

  // retry runs op on the live connection, again after NETWORK_ERROR, up to
  // opts.retries more times.
  async retry(op) {
    let delay = this.opts.retryDelay;
    for (let attempt = 0; ; attempt++) {
      let err;
      try {
        return await op(await this.live(delay));
      } catch (e) {
        err = e instanceof PlazaError ? e : fail("NETWORK_ERROR", String(e && e.message), { cause: e });
      }
      if (err.code !== "NETWORK_ERROR" || attempt >= this.opts.retries || this.left) {
        if (this.left && err.code === "NETWORK_ERROR") throw this.notConnected();
        throw err;
      }
      await sleep(jitter(delay));
      delay *= 2;
    }
  }

  // syncWire brings the server's subscription to topic in line with its
  // local subscriptions: subscribed at max(limits), or with no rate when
  // any has none; unsubscribed when none are left.
  syncWire(topic) {
    const run = this.wire.then(async () => {
      const wt = this.topics.get(topic);
      const c = this.conn;
      if (!wt) return;
      if (!wt.subs.length) {
        this.topics.delete(topic);
        if (c && wt.onWire) await c.request({ type: "unsubscribe", topic }).catch(() => {});
        return;
      }
      const rate = wt.subs.some((s) => !s.limit) ? 0 : Math.max(...wt.subs.map((s) => s.limit));
      if (wt.onWire && rate === wt.wireRate) return;
      if (!c) { wt.wireRate = rate; return; } // the reconnect subscribes it
      try {
        await c.request({ type: "subscribe", topic, ...(rate ? { rate } : {}) });
      } catch (err) {
        // Lost meanwhile: the reconnect, queued behind this, subscribes it.
        if (err.code === "NETWORK_ERROR" && c.closed) { wt.wireRate = rate; return; }
        throw err;
      }
      wt.wireRate = rate;
      wt.onWire = true;
    });
    this.wire = run.catch(() => {});
    return run;
  }

  async leave() {
    if (this.left) return;
    this.left = true;
    if (this.timer) clearTimeout(this.timer);
    for (const wt of this.topics.values()) for (const s of wt.subs) s.gone = true;
    for (const w of this.waiters) w();
    this.waiters.clear();
    const c = this.conn;
    this.conn = null;
    if (c) c.close();
    this.emit({ state: "disconnected" });
  }
}

/** PubSub is room.pubsub: publish, subscribe and getHistory on one room. */
class PubSub {
  constructor(room) { this.room = room; }

  /**
   * publish sends payload to topic and resolves with the message as the
   * server confirmed it (id, timestamp): the same object subscribers get.
   * The room's own subscriptions never receive it.
   */
  async publish(topic, payload, opts = {}) {
    const r = this.room;
    checkTopic(topic);
    const body = encodePayload(payload);
    const extra = checkPublishOpts(opts || {});
    if (r.left) throw r.notConnected();
    const idempotencyKey = `${r.keyPrefix}-${(++r.keySeq).toString(36)}`;
    const f = await r.retry((c) => c.request({ type: "publish", topic, ...extra, idempotencyKey }, body));
    return f.message;
  }

  /**
   * subscribe calls handler with each message on topic from other clients,
   * at most opts.limit a second when set. Resolves with {topic,
   * unsubscribe()}, once the server delivers the topic to this room.
   */
  async subscribe(topic, handler, opts = {}) {
    const r = this.room;
    checkTopic(topic);
    if (typeof handler !== "function") throw fail("INVALID_REQUEST", "handler must be a function");
    const limit = opts?.limit ?? 0;
    if (typeof limit !== "number" || !(limit >= 0) || !Number.isFinite(limit)) throw fail("INVALID_LIMIT", `limit ${limit} must be a number of messages per second, 0 or more`);
    if (r.left) throw r.notConnected();
    let wt = r.topics.get(topic);
    if (!wt) {
      wt = { subs: [], wireRate: 0, onWire: false, lastSeen: idAt(Date.now()), fill: undefined };
      r.topics.set(topic, wt);
    }
    const s = { topic, handler, limit, cap: limit > 0 ? new RateCap(limit, Date.now()) : null, gone: false };
    wt.subs.push(s);
    try {
      await r.syncWire(topic);
    } catch (err) {
      s.gone = true;
      wt.subs = wt.subs.filter((x) => x !== s);
      if (!wt.subs.length && !wt.onWire) r.topics.delete(topic);
      throw err;
    }
    if (r.left) throw r.notConnected(); // left before the server confirmed it
    let done = null;
    return {
      topic,
      unsubscribe: () => {
        if (done) return done;
        s.gone = true;
        r.holding.delete(s);
        const cur = r.topics.get(topic);
        if (!cur || r.left) return (done = Promise.resolve());
        cur.subs = cur.subs.filter((x) => x !== s);
        done = r.syncWire(topic).catch(() => {});
        return done;
      },
    };
  }

  /**
   * getHistory resolves with one page {messages, hasMore} of topic's
   * history, oldest first: the newest page, or the one just before or after
   * a message id.
   */
  async getHistory(topic, opts = {}) {
    const r = this.room;
    checkTopic(topic);
    const req = checkHistoryOpts(opts || {});
    if (r.left) throw r.notConnected();
    const f = await r.retry((c) => c.request({ type: "history", topic, limit: DEFAULT_HISTORY_LIMIT, ...req }));
    return { messages: Array.isArray(f.messages) ? f.messages : [], hasMore: !!f.hasMore };
  }
}

/**
 * join connects to the Plaza server at url (ws://, wss://, http:// or
 * https://, with any prefix the server is mounted under) and joins roomName.
 * It resolves once the server has accepted the credentials, and rejects
 * with UNAUTHENTICATED if it refuses them or NETWORK_ERROR if it cannot be
 * reached.
 */
export async function join(url, roomName, opts = {}) {
  checkTopic(roomName); // room names have the characters of topic names
  const o = {
    token: opts.token,
    WebSocket: opts.WebSocket || globalThis.WebSocket,
    reconnectMin: opts.reconnectMin > 0 ? opts.reconnectMin : 100,
    reconnectMax: opts.reconnectMax > 0 ? opts.reconnectMax : 5000,
    retries: opts.retries === undefined ? 3 : Math.max(0, opts.retries),
    retryDelay: opts.retryDelay > 0 ? opts.retryDelay : 250,
    requestTimeout: opts.requestTimeout > 0 ? opts.requestTimeout : 10000,
    connectTimeout: opts.connectTimeout > 0 ? opts.connectTimeout : 10000,
    pingInterval: opts.pingInterval > 0 ? opts.pingInterval : 0,
    gapFill: opts.gapFill !== false,
    onConnectionState: opts.onConnectionState,
    onError: opts.onError,
  };
  o.reconnectMax = Math.max(o.reconnectMax, o.reconnectMin);
  if (!o.WebSocket) throw fail("NOT_CONNECTED", "no WebSocket: pass opts.WebSocket (Node 20: run with --experimental-websocket, or pass the ws package)");
  const room = new Room(url, roomName, o);
  const c = await room.connect();
  room.attach(c);
  room.emit({ state: "connected", reconnected: false, gapFilled: true, filled: 0 });
  return room;
}

/** Plaza is the module's namespace: Plaza.join(url, room, {token}). */
export const Plaza = { join, PlazaError };
export default Plaza;
