// chat.mjs checks the chat demo of examples/server (/chat) in headless
// Chromium with two browser contexts, alice and bob. TestChatBrowser in
// transport/network runs it:
//
//   node chat.mjs <base URL> <publish key> <subscribe key> <screenshot dir or "">
//
// It prints one line per check and exits non-zero when any fails; with a
// screenshot dir it saves alice.png and bob.png there.
import { checks, launch } from "./launch.mjs";

const [base, pubKey, subKey, shots] = process.argv.slice(2);
const room = `chat-${process.pid}`;

const browser = await launch();
const { check, fail, failed } = checks({ firstLine: true });

// open joins the chat as name. Its WebSocket goes through a route the test
// controls: page.cut() drops the connection and refuses new ones until
// page.mend().
async function open(name) {
  const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
  const page = await context.newPage();
  let blocked = false;
  const live = new Set();
  await page.routeWebSocket(/\/ws$/, (ws) => {
    if (blocked) { ws.close({ code: 1011, reason: "cut by the test" }); return; }
    live.add(ws);
    ws.connectToServer();
  });
  page.cut = async () => {
    blocked = true;
    for (const ws of live) await ws.close({ code: 1011, reason: "cut by the test" });
    live.clear();
  };
  page.mend = () => { blocked = false; };
  page.setDefaultTimeout(10000);
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(e.message));
  await page.goto(`${base}/chat?name=${name}&room=${room}`);
  await page.fill("#key", pubKey);
  await page.click("#enter");
  await page.waitForSelector("#app.on");
  return page;
}

const texts = (page) => page.$$eval("#log .msg .text", (els) => els.map((e) => e.textContent));

try {
  // Earlier conversation, so that the page has history to page through.
  for (let i = 1; i <= 25; i++) {
    const resp = await fetch(`${base}/${room}/pubsub/chat/publish`, {
      method: "POST",
      headers: { Authorization: `Bearer ${pubKey}:carol`, "Content-Type": "application/json" },
      body: JSON.stringify({ message: { text: `earlier message ${i}` } }),
    });
    if (!resp.ok) throw new Error(`seeding history: ${resp.status} ${await resp.text()}`);
  }
  const alice = await open("alice");

  await check("history on entry, then load older", async () => {
    await alice.waitForFunction(() => document.querySelectorAll("#log .msg").length === 20);
    if (await alice.isHidden("#older")) throw new Error("no Load older button with 25 messages in history");
    await alice.click("#older");
    await alice.waitForFunction(() => document.querySelectorAll("#log .msg").length === 25);
    const t = await texts(alice);
    if (t[0] !== "earlier message 1" || t[24] !== "earlier message 25") throw new Error(`order: ${t[0]} … ${t[24]}`);
    await alice.waitForSelector("#older", { state: "hidden" });
  });

  const bob = await open("bob");

  await check("status shows connected", async () => {
    for (const p of [alice, bob]) await p.waitForSelector("#status.connected");
  });

  await check("a message reaches the other user, and the sender's once", async () => {
    await alice.fill("#text", "hi bob!");
    await alice.press("#text", "Enter");
    await bob.waitForFunction(() => [...document.querySelectorAll("#log .text")].some((e) => e.textContent === "hi bob!"));
    await alice.waitForFunction(() => !document.querySelector("#log .msg.pending"));
    const mine = (await texts(alice)).filter((t) => t === "hi bob!").length;
    if (mine !== 1) throw new Error(`alice shows her message ${mine} times`);
  });

  await check("people list and typing indicator", async () => {
    await alice.waitForFunction(() => document.getElementById("people").textContent.includes("bob"));
    await bob.type("#text", "typing some", { delay: 20 });
    await alice.waitForFunction(() => document.getElementById("typing").textContent.includes("bob is typing"));
  });

  await check("live cursors", async () => {
    const box = await bob.locator("#stage").boundingBox();
    for (let i = 0; i < 6; i++) {
      await bob.mouse.move(box.x + 100 + i * 40, box.y + 120 + i * 10);
      await bob.waitForTimeout(60); // a person's mouse moves over time
    }
    await alice.waitForFunction(() => [...document.querySelectorAll(".cursor")].some((c) => c.textContent === "bob" && c.style.opacity !== "0"));
  });

  await check("a private message reaches only its recipient", async () => {
    await bob.waitForFunction(() => [...document.querySelectorAll("#to option")].some((o) => o.value === "alice"));
    await bob.selectOption("#to", "alice");
    await bob.fill("#text", "just between us");
    await bob.press("#text", "Enter");
    await alice.waitForFunction(() => [...document.querySelectorAll("#log .msg.private .text")].some((e) => e.textContent === "just between us"));
    const resp = await fetch(`${base}/${room}/pubsub/chat/history?limit=5`, { headers: { Authorization: `Bearer ${subKey}:carol` } });
    const page = (await resp.json()).data;
    if (page.messages.some((m) => m.payload.text === "just between us")) throw new Error("carol sees the private message in history");
    await bob.selectOption("#to", "");
    await bob.fill("#text", "");
  });

  await check("reconnect status, then catch-up of what was missed", async () => {
    await alice.cut();
    await alice.waitForSelector("#status.reconnecting");
    const status = await alice.textContent("#status");
    for (const t of ["while you were away 1", "while you were away 2"]) {
      await bob.fill("#text", t);
      await bob.press("#text", "Enter");
    }
    await bob.waitForFunction(() => !document.querySelector("#log .msg.pending"));
    alice.mend();
    await alice.waitForSelector("#status.connected", { timeout: 15000 });
    await alice.waitForFunction(() => [...document.querySelectorAll("#log .notice")].some((n) => n.textContent.includes("caught up on 2 missed messages")));
    const t = await texts(alice);
    const got = t.filter((x) => x.startsWith("while you were away"));
    if (got.join("|") !== "while you were away 1|while you were away 2") throw new Error(`alice shows ${JSON.stringify(got)}`);
    return `while cut: "${status.trim()}"`;
  });

  await check("no uncaught errors on the pages", async () => {
    const errs = [...alice.errors, ...bob.errors];
    if (errs.length) throw new Error(errs.join("; "));
  });

  if (shots) {
    await bob.mouse.move(420, 300);
    await bob.type("#text", "see you", { delay: 30 });
    await alice.waitForTimeout(300); // let the cursor glide into place for the picture
    await alice.screenshot({ path: `${shots}/alice.png` });
    await bob.screenshot({ path: `${shots}/bob.png` });
  }
} catch (e) {
  fail(e);
} finally {
  await browser.close();
}
process.exit(failed() ? 1 : 0);
