// Sending without a connection and after a refusal, in Debian's Firefox ESR over WebDriver BiDi.
// Usage: node firefox_sending.mjs <widget page URL> <sandbox URL> <cutoff control URL>
//        <text to send while the connection is cut> <text to send while ChatCaptain refuses>
// The connection is cut below the browser (tests/browser/cutoff.py): a send waits in a
// bubble with the offline notice and goes by itself once a poll gets through again; a
// refused send comes back into the box and "Retry now" sends it. Python counts the copies
// the sandbox stored. Prints one JSON line; exits non-zero on failure.
import puppeteer from "puppeteer-core";

const [widgetPage, sandbox, cutoff, offlineText, refusedText] = process.argv.slice(2);
const FIREFOX = process.env.FIREFOX || "/usr/bin/firefox-esr";
const WAIT = 30000;

async function post(url, method = "POST", body = undefined) {
  const response = await fetch(url, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body && JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${url}: ${response.status}`);
}

async function until(check, what) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

// Read in one call: htmx swaps the log between two driver calls.
const state = (page) => page.evaluate(() => ({
  box: document.getElementById("ww-text").value,
  status: document.getElementById("ww-status").textContent,
  notice: (document.querySelector("#ww-status .ww-notice") || {}).className || "",
  pending: Array.from(document.querySelectorAll(".ww-msg--sending"),
    (el) => [el.querySelector(".ww-msg__body").textContent.trim(), el.getAttribute("data-ww-pending")]),
  said: Array.from(document.querySelectorAll(".ww-msg--visitor[data-message-id] .ww-msg__body"),
    (el) => el.textContent.trim()),
}));

async function send(page, text) {
  const box = await page.waitForSelector("#ww-text", { timeout: WAIT });
  await box.type(text);
  await box.press("Enter");
}

const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: FIREFOX,
  headless: true,
  protocol: "webDriverBiDi",
});
const result = { browser: await browser.version(), steps: [] };
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1024, height: 800 });
  await page.goto(widgetPage);
  await page.waitForSelector("html[data-ww-ready]", { timeout: WAIT });
  await (await page.waitForSelector("#ww-main .ww-button--primary", { timeout: WAIT })).click();
  await page.waitForSelector("[data-message-id]", { timeout: WAIT });

  // The connection goes: the words wait in a bubble, the box is free, the notice says so.
  await post(`${cutoff}/down`);
  await send(page, offlineText);
  await until(async () => {
    const s = await state(page);
    return s.box === "" && s.notice.includes("ww-notice--offline") &&
      s.pending.some(([text, st]) => text === offlineText && st === "waiting");
  }, "the waiting bubble and the offline notice");
  result.steps.push("waiting while cut off");
  // It comes back: the next poll that gets through sends it, once.
  await post(`${cutoff}/up`);
  await until(async () => {
    const s = await state(page);
    return s.said.includes(offlineText) && !s.pending.length && !s.notice.includes("offline");
  }, "the waiting message to be sent once the connection is back");
  result.steps.push("sent when back");

  // ChatCaptain refuses: the words come back into the box; "Retry now" sends them once.
  await post(`${sandbox}/_sandbox/faults`, "PUT", { error_status: 503, operations: ["send_message"] });
  await send(page, refusedText);
  await until(async () => {
    const s = await state(page);
    return s.box === refusedText && s.notice.includes("ww-notice--send_failed") && !s.pending.length;
  }, "the refused words back in the box with the notice");
  result.steps.push("refused words kept");
  await post(`${sandbox}/_sandbox/faults`, "DELETE");
  await (await page.waitForSelector("#ww-status .ww-retry", { timeout: WAIT })).click();
  await until(async () => {
    const s = await state(page);
    return s.said.includes(refusedText) && s.box === "";
  }, "the retried message");
  result.steps.push("retried once");
  const s = await state(page);
  result.said = s.said;
  result.ok = true;
} catch (error) {
  result.ok = false;
  result.error = String(error && error.stack || error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
