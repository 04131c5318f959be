// The conformance scenarios of testdata/conformance/scenarios.json, which
// TestConformanceGo runs with Go Rooms: plaza.js must produce the same
// deliveries and history pages.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, leaveAll, within } from "./helpers.mjs";

afterEach(leaveAll);

const scenarios = JSON.parse(readFileSync(new URL("../../testdata/conformance/scenarios.json", import.meta.url), "utf8"));

scenarios.forEach((sc, i) => {
  test(`conformance: ${sc.name}`, async () => {
    const roomName = `conf-${i}-js`;
    const rooms = {};
    for (const name of [...sc.clients, "zed"]) rooms[name] = await join(roomName, name);
    const got = { deliveries: {} };
    const ends = [];
    for (const name of sc.clients) {
      for (const topic of sc.subscribe[name] || []) {
        let done;
        ends.push(within(new Promise((res) => { done = res; }), `${name}'s end marker on ${topic}`));
        await rooms[name].pubsub.subscribe(topic, (m) => {
          if (m.from === "zed") { done(); return; }
          (got.deliveries[name] ||= []).push([m.from, m.topic, m.payload]);
        });
      }
    }
    const ids = [];
    for (const st of sc.steps) {
      const opts = {};
      if (st.to) opts.to = st.to;
      if (st.persist !== undefined) opts.persist = st.persist;
      if (st.metadata) opts.metadata = st.metadata;
      ids.push((await rooms[st.as].pubsub.publish(st.topic, st.payload, opts)).id);
    }
    const topics = new Set(Object.values(sc.subscribe).flat());
    for (const topic of topics) await rooms.zed.pubsub.publish(topic, { end: true });
    await Promise.all(ends);
    if (sc.history) {
      got.history = [];
      for (const h of sc.history) {
        const opts = {};
        if (h.limit) opts.limit = h.limit;
        if (h.beforeStep !== undefined) opts.before = ids[h.beforeStep];
        if (h.afterStep !== undefined) opts.after = ids[h.afterStep];
        if (h.from) opts.from = h.from;
        const page = await rooms[h.as].pubsub.getHistory(h.topic, opts);
        got.history.push({ payloads: page.messages.map((m) => m.payload), hasMore: page.hasMore });
      }
    }
    assert.deepEqual(got, sc.want);
  });
});
