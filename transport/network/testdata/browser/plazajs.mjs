// plazajs.mjs runs plaza.js in headless Chromium: two pages, as alice and
// bob, import it from the server (/plaza.js) and talk through it.
// TestPlazaJSBrowser in transport/network runs it:
//
//   node plazajs.mjs <base URL> <control URL> <user data dir>
//
// It prints one line per check and exits non-zero when any fails.
import { checks, launchPersistent } from "./launch.mjs";

const [base, control, userDataDir] = process.argv.slice(2);
const room = `browser-${process.pid}`;

const context = await launchPersistent(userDataDir);
const { check, fail, failed } = checks();
const post = async (path) => {
  const resp = await fetch(control + path, { method: "POST" });
  if (!resp.ok) throw new Error(`control ${path}: ${resp.status}`);
};

// open loads a page of the server's origin, imports plaza.js into it and
// joins the room as `as`; window.got collects deliveries on "chat".
async function open(as) {
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(base + "/plaza.js"); // any page of the server's origin
  await page.evaluate(async ([room, as]) => {
    const { Plaza } = await import("/plaza.js");
    window.Plaza = Plaza;
    window.got = [];
    window.states = [];
    window.room = await Plaza.join(location.origin, room, { token: as, reconnectMin: 50, reconnectMax: 200, connectTimeout: 1000, onConnectionState: (ev) => window.states.push(ev) });
    await window.room.pubsub.subscribe("chat", (m) => window.got.push(m));
  }, [room, as]);
  page.errors = errors;
  return page;
}

const waitGot = (page, n, what) => page.waitForFunction((n) => window.got.length >= n, n, { timeout: 10000 })
  .catch(async () => { throw new Error(`${what}: ${JSON.stringify(await page.evaluate(() => window.got.map((m) => m.payload)))}`); });

try {
  const alice = await open("alice");
  const bob = await open("bob");

  await check("publish in one page reaches the other, not the sender", async () => {
    const msg = await alice.evaluate(() => window.room.pubsub.publish("chat", { text: "hello from chromium" }));
    await waitGot(bob, 1, "bob's delivery");
    const got = await bob.evaluate(() => window.got[0]);
    if (got.id !== msg.id || got.payload.text !== "hello from chromium") throw new Error(`bob got ${JSON.stringify(got)}, alice published ${JSON.stringify(msg)}`);
    const own = await alice.evaluate(() => window.got.length);
    if (own !== 0) throw new Error(`alice's handler fired ${own} times for her own message`);
    return `id ${msg.id}`;
  });

  await check("SDK errors are PlazaErrors before any I/O", async () => {
    const codes = await alice.evaluate(async () => {
      const out = [];
      for (const call of [
        () => window.room.pubsub.publish("chat room", 1),
        () => window.room.pubsub.publish("chat", "é".repeat(17000)),
        () => window.room.pubsub.publish("chat", { n: 1n }),
        () => window.room.pubsub.getHistory("chat", { limit: 51 }),
        () => window.room.pubsub.getHistory("chat", { before: "1", after: "2" }),
      ]) {
        try { await call(); out.push("resolved"); } catch (e) { out.push(`${e.name}:${e.code}:${e.retriable}`); }
      }
      return out.join(" ");
    });
    const want = "PlazaError:INVALID_TOPIC_NAME:false PlazaError:PAYLOAD_TOO_LARGE:false PlazaError:INVALID_PAYLOAD:false PlazaError:INVALID_LIMIT:false PlazaError:INVALID_HISTORY_OPTS:false";
    if (codes !== want) throw new Error(`got ${codes}`);
  });

  await check("history pages in the browser", async () => {
    const page = await bob.evaluate(() => window.room.pubsub.getHistory("chat", { limit: 5 }));
    if (page.messages.length !== 1 || page.hasMore) throw new Error(JSON.stringify(page));
  });

  await check("a server restart: reconnect, re-subscribe, gap filled", async () => {
    await post("/stop");
    await bob.waitForFunction(() => window.room.state === "reconnecting", null, { timeout: 10000 });
    const r = await fetch(`${control}/publish?room=${room}&topic=chat`, { method: "POST", body: JSON.stringify("while away") });
    if (!r.ok) throw new Error(`control publish: ${r.status}`);
    await post("/start");
    await waitGot(bob, 2, "the gap's message at bob");
    const ev = await bob.waitForFunction(() => window.states.find((e) => e.state === "connected" && e.reconnected), null, { timeout: 10000 }).then((h) => h.jsonValue());
    if (!ev.gapFilled || ev.filled !== 1) throw new Error(`connection state ${JSON.stringify(ev)}`);
    await alice.waitForFunction(() => window.room.state === "connected", null, { timeout: 10000 });
    await alice.evaluate(() => window.room.pubsub.publish("chat", "live again"));
    await waitGot(bob, 3, "a live message after the reconnect");
    const payloads = await bob.evaluate(() => window.got.map((m) => m.payload));
    if (JSON.stringify(payloads) !== JSON.stringify([{ text: "hello from chromium" }, "while away", "live again"])) throw new Error(JSON.stringify(payloads));
  });

  await check("no uncaught errors in the pages", async () => {
    const errs = [...alice.errors, ...bob.errors];
    if (errs.length) throw new Error(errs.join("; "));
  });
  await alice.evaluate(() => window.room.leave());
  await bob.evaluate(() => window.room.leave());
} catch (e) {
  fail(e);
} finally {
  await context.close();
}
process.exit(failed() ? 1 : 0);
