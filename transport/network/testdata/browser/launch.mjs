// launch.mjs holds what the browser drivers (check.mjs, plazajs.mjs,
// chat.mjs) share: how they start headless Chromium and how they report
// their checks.
import { chromium } from "playwright-core";

// options starts the Chromium of $CHROMIUM (default /usr/bin/chromium)
// headless, without sandbox, GPU, QUIC or background traffic.
const options = {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  timeout: 30000,
};

// launch starts a browser for several contexts.
export const launch = () => chromium.launch(options);

// launchPersistent starts a browser context whose profile lives in userDataDir.
export const launchPersistent = (userDataDir) => chromium.launchPersistentContext(userDataDir, options);

// checks returns check(name, fn), which runs fn and prints "ok   name" or
// "FAIL name: message" (with firstLine, only the message's first line);
// fail(e), which counts and prints an error outside any check; and
// failed(), how many failed so far.
export function checks({ firstLine = false } = {}) {
  let failed = 0;
  const check = async (name, fn) => {
    try {
      const detail = await fn();
      console.log(`ok   ${name}${detail ? ": " + detail : ""}`);
    } catch (e) {
      failed++;
      const msg = e && e.message ? (firstLine ? e.message.split("\n")[0] : e.message) : e;
      console.log(`FAIL ${name}: ${msg}`);
    }
  };
  const fail = (e) => {
    failed++;
    console.log(`FAIL ${e && e.stack ? e.stack : e}`);
  };
  return { check, fail, failed: () => failed };
}
