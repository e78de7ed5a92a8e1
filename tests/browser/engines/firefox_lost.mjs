// A send after the chat ended behind the page's back, in Debian's Firefox ESR over BiDi.
// Usage: node firefox_lost.mjs <widget page URL> <text to send after the chat ended>
// End chat goes with the page's own handle and its answer is not shown (as when another tab
// ends the chat); the next send keeps its words in the lost chat's box, and its one button
// starts a new chat that sends them. Python counts the copies the sandbox stored.
// Prints one JSON line; exits non-zero on failure.
import puppeteer from "puppeteer-core";

const [widgetPage, words] = process.argv.slice(2);
const FIREFOX = process.env.FIREFOX || "/usr/bin/firefox-esr";
const WAIT = 30000;

async function until(check, what) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

const said = (page) => page.evaluate(() => Array.from(
  document.querySelectorAll(".ww-msg--visitor[data-message-id] .ww-msg__body"),
  (el) => el.textContent.trim()));

const browser = await puppeteer.launch({
  browser: "firefox", executablePath: FIREFOX, headless: true, protocol: "webDriverBiDi",
});
const result = { browser: await browser.version(), steps: [] };
try {
  const page = await browser.newPage();
  await page.goto(widgetPage);
  await page.waitForSelector("html[data-ww-ready]", { timeout: WAIT });
  await (await page.waitForSelector("#ww-main .ww-button--primary", { timeout: WAIT })).click();
  await page.waitForSelector("[data-message-id]", { timeout: WAIT });
  await page.evaluate(() => window.htmx.ajax("POST", "/w/default/end",
    { source: document.body, swap: "none" }));
  result.steps.push("ended behind the page's back");
  const box = await page.waitForSelector("#ww-text", { timeout: WAIT });
  await box.type(words);
  await box.press("Enter");
  const draft = await until(() => page.evaluate(() => {
    const el = document.getElementById("ww-draft");
    return el && el.value;
  }), "the lost chat's box with the words");
  if (draft !== words) throw new Error(`the box holds ${JSON.stringify(draft)}`);
  result.steps.push("words kept");
  await (await page.waitForSelector("#ww-main .ww-button--primary", { timeout: WAIT })).click();
  result.said = await until(async () => {
    const found = await said(page);
    return found.includes(words) && found;
  }, "the words sent in the new chat");
  result.ok = true;
} catch (error) {
  result.ok = false;
  result.error = String(error && error.stack || error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
