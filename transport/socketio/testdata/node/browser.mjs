// browser.mjs drives headless Chromium against a running examples/socketio
// and checks the seed's flow from a page: subscribe with socket.io-client
// (the bundle the server serves), receive what the seed's fetch snippet
// publishes, over WebSocket and over polling. TestBrowser in
// transport/socketio runs it:
//
//   node browser.mjs <base URL> <App ID> <publish key> <subscribe key> <user data dir>
//
// It prints one line per check and exits non-zero when any fails.
import { chromium } from "playwright-core";

const [base, appId, publishKey, subscribeKey, userDataDir] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  timeout: 30000,
});
let failed = 0;
const check = async (name, fn) => {
  try {
    const detail = await fn();
    console.log(`ok   ${name}${detail ? ": " + detail : ""}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.message ? e.message : e}`);
  }
};

// publish is the seed's fetch snippet, run by a backend (Node).
async function publish(data) {
  const resp = await fetch(`${base}/publish`, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "X-App-Id": appId,
      Authorization: `Bearer ${publishKey}`,
    },
    body: JSON.stringify({ channel: "orders.42", event: "order.updated", data }),
  });
  if (resp.status !== 200) throw new Error(`publish: ${resp.status} ${await resp.text()}`);
}

try {
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(base + "/");
  const logHas = (text) => page.waitForFunction((t) => document.getElementById("log").textContent.includes(t), text);

  for (const transports of ["websocket,polling", "polling"]) {
    await check(`the page subscribes over ${transports} and receives a publish`, async () => {
      await page.fill("#appId", appId);
      await page.fill("#subscribeKey", subscribeKey);
      await page.selectOption("#transports", transports);
      await page.evaluate(() => { document.getElementById("log").textContent = ""; });
      await page.click("#connect");
      await logHas("connected over " + transports.split(",")[0]);
      await page.click("#subscribe");
      await logHas("subscribed orders.42");
      const id = transports.length;
      await publish({ id });
      await logHas(`order.updated {"id":${id}}`);
      return (await page.textContent("#log")).trim().split("\n").join(" | ");
    });
  }

  await check("the seed's snippet, as written, in the page", async () => {
    const received = page.evaluate(([appId, subscribeKey]) => new Promise((resolve, reject) => {
      const socket = io(location.origin, {
        transports: ["websocket", "polling"],
        auth: { appId, subscribeKey },
      });
      socket.emit("subscribe", "orders.42");
      socket.on("subscribed", (p) => { window.snippetJoined = p.channel; });
      socket.on("order.updated", (data) => { socket.close(); resolve(data); });
      socket.on("connect_error", (e) => reject(new Error(e.message)));
    }), [appId, subscribeKey]);
    await page.waitForFunction(() => window.snippetJoined === "orders.42");
    await publish({ id: 3 });
    const got = await received;
    if (got.id !== 3) throw new Error("received " + JSON.stringify(got));
    return JSON.stringify(got);
  });

  await check("a wrong subscribe key gets connect_error with a reason", async () => {
    const e = await page.evaluate((appId) => new Promise((resolve) => {
      const socket = io(location.origin, { transports: ["websocket", "polling"], auth: { appId, subscribeKey: "sub_live_wrong" } });
      socket.on("connect_error", (e) => { socket.close(); resolve({ message: e.message, data: e.data }); });
    }), appId);
    if (!e.data || e.data.code !== "UNAUTHENTICATED") throw new Error(JSON.stringify(e));
    return e.message;
  });

  await check("another origin is refused", async () => {
    const other = base.replace("127.0.0.1", "localhost");
    const r = await page.evaluate(([other, appId, subscribeKey]) => new Promise((resolve) => {
      const socket = io(other, { transports: ["polling"], auth: { appId, subscribeKey }, reconnection: false });
      socket.on("connect", () => { socket.close(); resolve("connected"); });
      socket.on("connect_error", (e) => { socket.close(); resolve("connect_error: " + e.message); });
    }), [other, appId, subscribeKey]);
    if (!r.startsWith("connect_error")) throw new Error(r);
    return r;
  });
} finally {
  await context.close();
}
process.exit(failed ? 1 : 0);
