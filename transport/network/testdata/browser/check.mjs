// check.mjs drives headless Chromium against a running examples/server and
// checks what a browser can do with it. TestBrowser in transport/network
// runs it:
//
//   node check.mjs <base URL> <publish key> <subscribe key> <user data dir>
//
// It prints one line per check and exits non-zero when any fails.
import { chromium } from "playwright-core";

const [base, pubKey, subKey, userDataDir] = process.argv.slice(2);
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

// publish posts a message as a backend would: from Node, with the key.
async function publish(topic, message) {
  const resp = await fetch(`${base}/lobby/pubsub/${topic}/publish`, {
    method: "POST",
    headers: { "Authorization": "Bearer " + pubKey, "Content-Type": "application/json" },
    body: JSON.stringify({ message }),
  });
  if (resp.status !== 200) throw new Error(`publish: ${resp.status} ${await resp.text()}`);
  return (await resp.json()).data;
}

try {
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(base + "/");
  await page.waitForFunction(() => window.plaza !== undefined);

  await check("EventSource receives an HTTP POST published with fetch", async () => {
    const got = await page.evaluate(async ([pk, sk]) => {
      const received = new Promise((resolve) => {
        plaza.subscribeSSE("lobby", "alerts", sk, false, resolve).then(() =>
          plaza.publish("lobby", "alerts", pk, "Server restarted"));
      });
      return await received;
    }, [pubKey, subKey]);
    if (got.payload !== "Server restarted") throw new Error("payload " + JSON.stringify(got.payload));
    return `message ${got.id}, payload ${JSON.stringify(got.payload)}`;
  });

  await check("EventSource on a pattern with a literal *", async () => {
    const wait = page.evaluate((sk) => new Promise((resolve) => {
      plaza.subscribeSSE("lobby", "user:*", sk, true, resolve).then(() => { window.sseReady = true; });
    }), subKey);
    await page.waitForFunction(() => window.sseReady === true);
    const sent = await publish("user:123", { type: "login", userId: "123" });
    const got = await wait;
    if (got.id !== sent.id || got.topic !== "user:123") throw new Error(`got ${got.id} on ${got.topic}, want ${sent.id}`);
    return `message ${got.id} on ${got.topic}`;
  });

  await check("WebSocket receives an HTTP POST", async () => {
    const wait = page.evaluate((sk) => new Promise((resolve, reject) => {
      plaza.subscribeWS("/lobby/pubsub/alerts/ws", sk, resolve).then(() => { window.wsReady = true; }, reject);
    }), subKey);
    await page.waitForFunction(() => window.wsReady === true);
    const sent = await publish("alerts", { text: "over a WebSocket" });
    const got = await wait;
    if (got.id !== sent.id || got.payload.text !== "over a WebSocket") throw new Error(`got ${JSON.stringify(got)}`);
    return `message ${got.id}`;
  });

  await check("a temporary client socket works without the key", async () => {
    // The backend creates the path; the page only ever sees the path.
    const resp = await fetch(`${base}/lobby/pubsub/alerts/client?max_uses=1&ttl=60000`, { headers: { "Authorization": "Bearer " + pubKey } });
    const { data } = await resp.json();
    if (!data || !data.path.startsWith("/lobby/s/")) throw new Error(`client: ${resp.status} ${JSON.stringify(data)}`);
    const wait = page.evaluate((path) => new Promise((resolve, reject) => {
      plaza.subscribeWS(path, "", resolve).then(() => { window.clientReady = true; }, reject);
    }), data.path);
    await page.waitForFunction(() => window.clientReady === true);
    const sent = await publish("alerts", "for a keyless page");
    const got = await wait;
    if (got.id !== sent.id || got.payload !== "for a keyless page") throw new Error(`got ${JSON.stringify(got)}`);
    // A second connection with the same path is refused: max_uses was 1.
    const second = await page.evaluate((path) => new Promise((resolve) => {
      const ws = new WebSocket(location.origin.replace(/^http/, "ws") + path);
      ws.onopen = () => resolve("opened");
      ws.onerror = () => resolve("refused");
    }), data.path);
    if (second !== "refused") throw new Error("a used-up client socket opened again");
    const probe = await page.evaluate(async (path) => (await fetch(path)).json(), data.path);
    if (probe.error?.code !== "exhausted_client_socket") throw new Error("probe: " + JSON.stringify(probe));
    return `path ${data.path.slice(0, 12)}…, message ${got.id}, then ${probe.error.code}`;
  });
} finally {
  await context.close();
}
console.log(failed ? `${failed} check(s) failed` : "all checks passed");
process.exit(failed ? 1 : 0);
