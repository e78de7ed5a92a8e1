// The core visitor journey in Debian's Firefox ESR, driven over WebDriver BiDi.
// Usage: node firefox_journey.mjs <host page URL with the loader> <sandbox URL> <secret>...
// A host page on another site embeds the widget with the script tag; the visitor starts,
// sends, sees the reply, reloads, and finds the conversation with the newest message in
// view; no secret appears in the frame. Prints one JSON line; exits non-zero on failure.
import puppeteer from "puppeteer-core";

const [hostPage, sandbox, ...secrets] = process.argv.slice(2);
const FIREFOX = process.env.FIREFOX || "/usr/bin/firefox-esr";
const WAIT = 20000;
const MESSAGE = "[data-message-id]";
const REPLY = ".ww-msg--visitor[data-message-id] ~ .ww-msg--bot[data-message-id]";

async function advanceClock() {
  // Bot replies fall due on the sandbox's clock.
  await fetch(`${sandbox}/_sandbox/clock`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ advance: 5 }),
  });
}

// The loader's iframe lives in a shadow root: `>>>` pierces it.
async function openWidget(page) {
  const launcher = await page.waitForSelector("#webwidget-default >>> button.l", { timeout: WAIT });
  await launcher.click();
  const element = await page.waitForSelector("#webwidget-default >>> iframe", { timeout: WAIT });
  const frame = await element.contentFrame();
  await frame.waitForSelector("html[data-ww-ready]", { timeout: WAIT });
  return frame;
}

// After a reload of a page whose chat was open: the loader opens it again by itself.
async function restoredWidget(page) {
  await page.waitForSelector("#webwidget-default >>> button.l", { timeout: WAIT });
  if (!(await page.evaluate(() => window.WebWidget.isOpen()))) {
    throw new Error("the chat that was open did not stay open after the reload");
  }
  const element = await page.waitForSelector("#webwidget-default >>> iframe", { timeout: WAIT });
  const frame = await element.contentFrame();
  await frame.waitForSelector("html[data-ww-ready]", { timeout: WAIT });
  return frame;
}

async function until(check, what) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await advanceClock();
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

const ids = (frame) => frame.$$eval(MESSAGE, (els) => els.map((el) => el.getAttribute("data-message-id")));

// The last message's bottom edge lies inside the log's visible box.
const newestInView = (frame) => frame.$eval("#ww-log", (log) => {
  const all = log.querySelectorAll("[data-message-id]");
  if (!all.length) return false;
  const box = log.getBoundingClientRect(), last = all[all.length - 1].getBoundingClientRect();
  return last.bottom > box.top && last.bottom <= box.bottom + 2;
});

const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: FIREFOX,
  headless: true,
  protocol: "webDriverBiDi",
});
const result = { browser: await browser.version() };
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1024, height: 800 });
  await page.goto(hostPage);
  let frame = await openWidget(page);
  await (await frame.waitForSelector("#ww-main .ww-button--primary", { timeout: WAIT })).click();
  await frame.waitForSelector(MESSAGE, { timeout: WAIT });
  const box = await frame.waitForSelector("#ww-text", { timeout: WAIT });
  await box.type("help");
  await box.press("Enter");
  await until(() => frame.$(REPLY), "the bot's reply");
  const before = await ids(frame);
  result.messages = before.length;

  await page.reload();
  frame = await restoredWidget(page);
  await until(async () => JSON.stringify(await ids(frame)) === JSON.stringify(before),
    "the same conversation after the reload");
  await until(() => newestInView(frame), "the newest message in view after the reload");
  // Another exchange after the reload, watched for any Content-Security-Policy violation
  // (an htmx that injected its indicator styles would cause one on every swap).
  await frame.evaluate(() => {
    window.cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => {
      window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const again = await frame.waitForSelector("#ww-text", { timeout: WAIT });
  await again.type("text");
  await again.press("Enter");
  await until(async () => (await ids(frame)).length >= before.length + 2, "the second reply");
  const violations = await frame.evaluate(() => window.cspViolations);
  if (violations.length) throw new Error(`CSP violations: ${violations.join("; ")}`);
  const html = await frame.content();
  for (const secret of secrets) {
    if (html.includes(secret)) throw new Error("a secret is in the widget's page");
  }
  if (/(?<![A-Za-z])(wt|ct|cv)_[\w-]{16,}/.test(html)) throw new Error("an upstream id is in the page");
  result.ok = true;
} catch (error) {
  result.ok = false;
  result.error = String(error && error.stack || error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
