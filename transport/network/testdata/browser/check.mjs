// check.mjs drives headless Chromium against a running examples/server and
// checks what a browser can do with it. TestBrowser in transport/network
// runs it:
//
//   node check.mjs <base URL> <publish key> <subscribe key> <user data dir>
//
// It prints one line per check and exits non-zero when any fails. With
// SCREENSHOT=<file.png> in the environment it saves a picture of the page,
// its log full, at the end.
import { checks, launchPersistent } from "./launch.mjs";

const [base, pubKey, subKey, userDataDir] = process.argv.slice(2);

const context = await launchPersistent(userDataDir);
const { check, failed } = checks();

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

// logLines returns the lines of the page's log, as the page shows them.
const logLines = (page) => page.evaluate(() => document.getElementById("log").innerText.split("\n").filter((l) => l.trim()));

// countLines returns how many lines of the page's log match re.
const countLines = async (page, re) => (await logLines(page)).filter((l) => re.test(l)).length;

// logLine waits until a line of the page's log matches re and returns it,
// without its time; what says what the line would show, for the failure
// message.
async function logLine(page, re, what) {
  try {
    await page.waitForFunction(([src, flags]) => {
      const re = new RegExp(src, flags);
      return document.getElementById("log").innerText.split("\n").some((l) => re.test(l));
    }, [re.source, re.flags], { timeout: 10000 });
  } catch {
    throw new Error(`no log line matching ${re} (${what}) within 10 s; the log:\n${(await logLines(page)).join("\n")}`);
  }
  return (await logLines(page)).find((l) => re.test(l)).replace(/^\d\d:\d\d:\d\d\s*/, "");
}

// fresh closes every subscription of the page, empties its log and sets
// its fields for the next check.
async function fresh(page, fields) {
  await page.evaluate(() => { window.plaza.closeAll(); document.getElementById("log").replaceChildren(); });
  const all = { room: "lobby", topic: "alerts", subkey: subKey, pubkey: pubKey, ...fields };
  for (const [id, value] of Object.entries(all)) await page.fill("#" + id, value);
  await page.setChecked("#pattern", false);
}

try {
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  // Every uncaught exception and unhandled rejection on the page is a bug:
  // each failure belongs in its log.
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  const icon404 = [];
  page.on("response", (r) => { if (new URL(r.url()).pathname === "/favicon.ico" && r.status() !== 200) icon404.push(r.status()); });
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

  await check("the page has an icon: no 404 for /favicon.ico", async () => {
    const icon = await page.evaluate(async () => {
      const r = await fetch("/favicon.ico");
      const link = document.querySelector("link[rel=icon]");
      return { status: r.status, type: r.headers.get("content-type"), link: link && link.getAttribute("href") };
    });
    if (icon.status === 200) {
      await page.waitForFunction(() => document.querySelector("h1 img")?.complete);
      icon.width = await page.evaluate(() => document.querySelector("h1 img").naturalWidth);
    }
    if (icon.status !== 200 || icon.type !== "image/svg+xml" || icon.link !== "/favicon.ico" || !icon.width || icon404.length) {
      throw new Error(`favicon: ${JSON.stringify(icon)}, failed loads ${icon404}`);
    }
    return `${icon.type}, linked from the page, shown ${icon.width} px wide`;
  });

  await check("a wrong key on SSE is explained in the log", async () => {
    await fresh(page, { subkey: "sk-wrong" });
    await page.click("#sse");
    return await logLine(page, /SSE lobby\/alerts: refused: 401 UNAUTHENTICATED: \S/, "the status and code EventSource does not show");
  });

  await check("a wrong key on a WebSocket shows the close code and its reason", async () => {
    await fresh(page, { subkey: "sk-wrong" });
    await page.click("#ws");
    return await logLine(page, /WebSocket lobby\/alerts: closed 4001 UNAUTHENTICATED: \S.*\(not authenticated\)/, "close 4001 with the reason");
  });

  await check("a wrong key on a temporary client socket is explained in the log", async () => {
    await fresh(page, { subkey: "sk-wrong" });
    await page.click("#client");
    const line = await logLine(page, /client socket lobby\/alerts: refused: 401 UNAUTHENTICATED: \S/, "the refusal of GET …/client");
    if (await countLines(page, /Cannot read properties/)) throw new Error("the log shows a TypeError: " + (await logLines(page)).join("\n"));
    return line;
  });

  await check("a pattern typed without the pattern box ticked is explained, not subscribed", async () => {
    await fresh(page, { topic: "user:*" });
    for (const button of ["#sse", "#ws", "#client"]) await page.click(button);
    const re = /(SSE|WebSocket|client socket): "user:\*" looks like a pattern: tick "pattern"/;
    await logLine(page, re, "the hint to tick pattern");
    const n = await countLines(page, re);
    const open = await page.evaluate(() => window.plaza.open.size);
    if (n !== 3 || open !== 0) throw new Error(`${n} hints for 3 buttons, ${open} subscriptions opened; the log:\n${(await logLines(page)).join("\n")}`);
    return `3 hints, no subscription`;
  });

  await check("subscribing twice does not double every message", async () => {
    await fresh(page, {});
    for (const [button, opened] of [["#sse", /SSE lobby\/alerts: open/], ["#ws", /WebSocket lobby\/alerts: subscribed/]]) {
      await page.click(button);
      await logLine(page, opened, "the first subscription");
      await page.click(button);
      await logLine(page, /already open; closing that one first/, "the previous subscription closed");
      try {
        await page.waitForFunction(([src]) => document.getElementById("log").innerText.split("\n").filter((l) => new RegExp(src).test(l)).length === 2, [opened.source], { timeout: 10000 });
      } catch {
        throw new Error(`the second subscription did not open; the log:\n${(await logLines(page)).join("\n")}`);
      }
    }
    const open = await page.locator("#subs li").allTextContents();
    if (open.length !== 2) throw new Error(`open subscriptions ${JSON.stringify(open)}, want one SSE and one WebSocket`);
    const first = await publish("alerts", "once");
    const second = await publish("alerts", "and again");
    // Each subscription delivers in order: once the second message shows
    // on both, every copy of the first has arrived.
    await logLine(page, new RegExp(`SSE alerts #${second.id}`), "the second message over SSE");
    await logLine(page, new RegExp(`WS alerts #${second.id}`), "the second message over the WebSocket");
    const sse = await countLines(page, new RegExp(`SSE alerts #${first.id}`));
    const ws = await countLines(page, new RegExp(`WS alerts #${first.id}`));
    if (sse !== 1 || ws !== 1) throw new Error(`message ${first.id} shown ${sse} times over SSE and ${ws} over the WebSocket, want once each`);
    return `open: ${open.map((l) => l.replace(/×$/, "")).join(", ")}; message ${first.id} shown once each`;
  });

  await check("a client socket at its max_dur shows close 4004 and why", async () => {
    await fresh(page, {});
    const resp = await fetch(`${base}/lobby/pubsub/alerts/client?max_dur=1500`, { headers: { "Authorization": "Bearer " + subKey } });
    const { data } = await resp.json();
    await page.evaluate((path) => window.plaza.subscribeWS(path, "", () => {}, "client socket (max_dur 1500 ms)").catch(() => {}), data.path);
    await logLine(page, /client socket \(max_dur 1500 ms\): subscribed/, "the socket open");
    const line = await logLine(page, /client socket \(max_dur 1500 ms\): closed 4004 max_duration_reached: .*1500 ms/, "close 4004 with its reason");
    // Used up now (max_uses is 1): connecting again is refused before the
    // upgrade, which the page finds out and says.
    await page.evaluate((path) => window.plaza.subscribeWS(path, "", () => {}, "client socket used up").catch(() => {}), data.path);
    await logLine(page, /client socket used up: closed 1006 refused: 410 exhausted_client_socket: the client socket has been used once/, "why the handshake was refused");
    return line;
  });

  await check("the page reads a WebSocket message alone or in a batch", async () => {
    const got = await page.evaluate(() => {
      const m = { id: "1", topic: "alerts", from: "a", payload: null, timestamp: "2026-03-15T12:00:00Z" };
      return [
        plaza.messagesOf(m),
        plaza.messagesOf({ v: 1, type: "messages", messages: [m, m] }),
        plaza.messagesOf({ v: 1, type: "welcome", clientId: "a" }),
        plaza.messagesOf({ v: 1, type: "error", error: { code: "X", message: "" } }),
      ].map((ms) => (ms === null ? null : ms.length));
    });
    if (JSON.stringify(got) !== "[1,2,null,null]") throw new Error(`messages found: ${JSON.stringify(got)}, want [1,2,null,null]`);
  });

  await check("no uncaught error on the page", async () => {
    if (pageErrors.length) throw new Error(pageErrors.join("; "));
  });

  if (process.env.SCREENSHOT) {
    await fresh(page, {});
    await page.click("#sse");
    await page.click("#ws");
    await logLine(page, /WebSocket lobby\/alerts: subscribed/, "the WebSocket open");
    await publish("alerts", { text: "hello from the screenshot" });
    await logLine(page, /WS alerts .*hello from the screenshot/, "the message shown");
    await page.fill("#subkey", "sk-wrong");
    await page.click("#client");
    await logLine(page, /client socket lobby\/alerts: refused/, "the refusal");
    await page.fill("#subkey", subKey);
    await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  }
} finally {
  await context.close();
}
console.log(failed() ? `${failed()} check(s) failed` : "all checks passed");
process.exit(failed() ? 1 : 0);
