// The host page's WebWidget.open(), called as soon as the loader has loaded, in Debian's
// Firefox ESR over WebDriver BiDi: the panel opens and focus lands in the frame's main action.
// Usage: node firefox_open_early.mjs <host page URL that calls WebWidget.open() on load>
// Prints one JSON line; exits non-zero on failure.
import puppeteer from "puppeteer-core";

const [hostPage] = process.argv.slice(2);
const FIREFOX = process.env.FIREFOX || "/usr/bin/firefox-esr";
const WAIT = 20000;

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
  // The iframe exists only once the panel opened (it is created on first open).
  const element = await page.waitForSelector("#webwidget-default >>> iframe", { timeout: WAIT });
  const frame = await element.contentFrame();
  await frame.waitForSelector("html[data-ww-ready]", { timeout: WAIT });
  await frame.waitForFunction(
    () => document.activeElement && document.activeElement.matches("#ww-main .ww-button--primary"),
    { timeout: WAIT });
  result.open = await page.evaluate(() => WebWidget.isOpen());
  result.panelShown = await page.evaluate(
    () => !document.getElementById("webwidget-default").shadowRoot.querySelector(".p").hidden);
  result.ok = result.open && result.panelShown;
  if (!result.ok) result.error = "the panel is not open";
} catch (error) {
  result.ok = false;
  result.error = String(error && error.stack || error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
