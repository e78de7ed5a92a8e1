/*! webwidget loader: docs/embedding.md */
// Embed: <script src="https://chat.example.com/embed.js" data-widget="default" async></script>
// Position, colours and words come from the widget's theme; data-position="left", data-lang="DE",
// data-title, data-color and data-storage="none" override. One widget per page.
(function (w, d) {
  "use strict";
  var script = d.currentScript;
  if (!script) return;
  var opt = script.dataset;
  if (w.WebWidget) {
    // One launcher per page: a second one would sit on the first and share its API.
    console.warn("webwidget: one widget per page; \"" + (opt.widget || "default") + "\" ignored");
    return;
  }
  // The widget's origin is where this script came from; every message is checked against it.
  var origin = new URL(script.src).origin, enc = encodeURIComponent;
  var id = opt.widget || "default";
  var key = "webwidget:" + origin + ":" + id;
  var keep = opt.storage !== "none";
  // English until the widget's config answers in the page's language.
  var words = { open: "Open chat", openUnread: "Open chat (new messages: {n})", close: "Close chat",
    unread: "New chat messages: {n}" };
  var title = opt.title || "Chat";
  var lang = (opt.lang || d.documentElement.lang || "").slice(0, 16);
  var host, root, launcher, badge, panel, frame, live;
  // `wanted`: what calls made before the launcher exists asked for, honoured once it does.
  var open = false, ready = false, unread = 0, wanted = false, quiet = false;

  // The handle lives here only where the iframe cannot keep its cookie; never in a URL.
  // Besides it: the newest bot message the visitor saw (":seen", for the unread count on
  // later pages) and, for this tab, whether the panel was open (":open", kept open).
  function stored(name, where) {
    try { return keep && (where || localStorage).getItem(key + name) || null; } catch (e) { return null; }
  }
  function store(value, name, where) {
    try {
      where = where || localStorage;
      if (!keep) return;
      if (value) where.setItem(key + name, value); else where.removeItem(key + name);
    } catch (e) { /* storage blocked: the cookie is all we have */ }
  }

  function fire(name, detail) {
    w.dispatchEvent(new CustomEvent("webwidget:" + name, { detail: detail || {} }));
  }
  function post(message) {
    if (frame && frame.contentWindow) frame.contentWindow.postMessage(message, origin);
  }

  // Full screen on a phone: the page behind leaves the accessibility tree and stops
  // scrolling (restored as it was on close; elements the host made inert stay so).
  var covered = [], overflow, rootStyle = d.documentElement.style;
  function cover(on) {
    if (covered.length) rootStyle.overflow = overflow;
    covered.forEach(function (el) { el.inert = false; });
    covered = [];
    if (!on || !w.matchMedia("(max-width:480px)").matches) return;
    covered = [].filter.call(d.body.children, function (el) { return el !== host && !el.inert; });
    covered.forEach(function (el) { el.inert = true; });
    overflow = rootStyle.overflow;
    rootStyle.overflow = "hidden";
  }

  function render() {
    cover(open);
    launcher.setAttribute("aria-expanded", String(open));
    launcher.setAttribute("aria-label", open ? words.close
      : (unread ? words.openUnread : words.open).replace("{n}", unread));
    badge.textContent = unread > 9 ? "9+" : String(unread);
    badge.hidden = !unread || open;
    panel.hidden = !open;
    host.classList.toggle("o", open);
    // "(1) Shop": the tab says so too, until the chat is opened.
    d.title = (unread && !open ? "(" + badge.textContent + ") " : "") + d.title.replace(/^\(\d+\+?\) /, "");
  }

  // A reply that came while the visitor went on to another page: the server counts the
  // bot messages after the newest one seen here, from its cached list (no frame, no call
  // upstream), and is asked again now and then while no frame is there to tell.
  function ask() {
    var seen = stored(":seen"), handle = stored("");
    if (frame || !seen || !w.fetch) return;
    fetch(origin + "/w/" + enc(id) + "/unread?seen=" + enc(seen), {
      credentials: "include", headers: handle ? { "X-Widget-Session": handle } : {}
    }).then(function (r) { return r.json(); }).then(function (a) {
      if (!a.chat || frame) return;
      if (a.unread > unread) newMessages(a.unread - unread);
      setTimeout(ask, a.every * 1000);
    }, function () {});
  }
  function newMessages(count) {
    unread += Math.min(count, 99);
    live.textContent = words.unread.replace("{n}", unread);
    render();
    fire("unread", { count: unread });
  }

  // Origin and path only: a query string or fragment may hold the host's secrets (tokens, emails).
  function page() { return (location.origin + location.pathname).slice(0, 2000); }
  function frameSrc() {
    return origin + "/w/" + enc(id) + "?page=" + enc(page()) +
      (lang ? "&lang=" + enc(lang) : "");
  }
  // A single-page app changes its route without a load: the frame starts the chat with
  // the page the visitor is on now.
  var told;
  function tellPage() {
    if (ready && told !== page()) post({ type: "ww:page", page: told = page() });
  }

  // `restore`: open as it was on the last page, without taking the focus from the page.
  function show(restore) {
    if (!panel) { wanted = true; return; }
    if (open) return;
    store("1", ":open", sessionStorage);
    quiet = restore === true;
    if (!frame) {
      // Created on first open, so a page view costs nothing upstream.
      frame = d.createElement("iframe");
      frame.title = title;
      frame.src = frameSrc();
      panel.appendChild(frame);
    }
    open = true;
    unread = 0;
    render();
    // Focus the frame itself first: a script inside may move focus within a frame that
    // has it, not pull it in from the host page.
    if (!quiet) frame.focus();
    if (ready) post({ type: "ww:focus", quiet: quiet });
    tellPage();
    fire("open");
  }
  function hide() {
    wanted = false;
    store("", ":open", sessionStorage);
    if (!open) return;
    var inside = root.activeElement === frame;
    open = false;
    render();
    if (inside) launcher.focus();
    fire("close");
  }

  w.addEventListener("message", function (event) {
    var data = event.data;
    if (!frame || event.source !== frame.contentWindow || event.origin !== origin) return;
    if (!data || typeof data.type !== "string") return;
    if (data.type === "ww:ready") {
      ready = true;
      post({ type: "ww:hello", handle: stored("") });
      if (open) post({ type: "ww:focus", quiet: quiet });
      tellPage();
    } else if (data.type === "ww:session" && typeof data.handle === "string" &&
        /^[\w.-]{0,400}$/.test(data.handle)) {
      store(data.handle, "");
    } else if (data.type === "ww:new") {
      // Open, the visitor sees them: the newest one is "seen" for the next pages.
      if (open && typeof data.last === "string") store(data.last.slice(0, 128), ":seen");
      else if (data.count > 0 && !open) newMessages(data.count);
    } else if (data.type === "ww:close") {
      hide();
      launcher.focus();
    }
  });

  var CSS =
    ":host{all:initial}" +
    ".l,.p{position:fixed;right:20px;z-index:2147483000}" +
    ".l{bottom:20px;width:56px;height:56px;" +
    "border:0;border-radius:50%;background:var(--c,#1f5fbf);color:var(--o,#fff);cursor:pointer;" +
    "display:flex;align-items:center;justify-content:center;box-shadow:0 4px 14px rgba(0,0,0,.3)}" +
    ".l:focus-visible{outline:3px solid #0b57d0;outline-offset:3px;box-shadow:0 0 0 3px #fff}" +
    ".b{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 6px;" +
    "border-radius:10px;background:#b3261e;color:#fff;font:700 12px/20px system-ui,sans-serif}" +
    ".p{bottom:88px;width:380px;" +
    "height:min(640px,calc(100vh - 108px));border-radius:var(--r,16px);overflow:hidden;" +
    "background:#fff;box-shadow:var(--s,0 8px 30px rgba(0,0,0,.3))}" +
    ":host(.L) .l,:host(.L) .p{right:auto;left:20px}:host(.L) .b{right:auto;left:-4px}" +
    // Open, the launcher shows a close icon; in dark mode it takes the header's dark colours.
    ":host(.o) .i,:host(:not(.o)) .x{display:none}" +
    // Forced colours drop the shadow and background that show where they end.
    "@media (forced-colors:active){.l,.p{outline:2px solid CanvasText}}" +
    "@media (prefers-color-scheme:dark){.l{background:var(--cd,#8ab4f8);color:var(--od,#0b1a33)}.p{background:#16181d}}" +
    "[hidden]{display:none!important}" +
    "iframe{display:block;width:100%;height:100%;border:0}" +
    ".v{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}" +
    // Small screens: the open chat takes the whole screen and closes from inside the frame.
    "@media (max-width:480px){.p,:host(.L) .p{inset:0;width:auto;height:auto;border-radius:0}:host(.o) .l{display:none}}";

  // The widget's theme and words; on any failure (or a host CSP without connect-src for
  // the widget) the launcher still appears, with the defaults and the data-* options.
  // An embed the server refuses (no such widget, origin not allowed) shows nothing: the
  // console says what to fix.
  function configure() {
    var done = false;
    function go(config) {
      if (done) return;
      done = true;
      if (config) init(config);
    }
    setTimeout(go, 3000, {});
    try {
      fetch(origin + "/embed/" + enc(id) + ".json?lang=" + enc(lang) +
        (opt.title ? "&title=" + enc(opt.title) : ""), { credentials: "omit" })
        .then(function (r) { return r.ok ? r.json() : {}; })
        .then(function (c) {
          if (c.error) console.error("webwidget: " + c.error);
          go(!c.error && c);
        }, function () { go({}); });
    } catch (e) { go({}); }
  }

  function init(config) {
    if (config.strings) words = config.strings;
    if (config.title) title = config.title;
    host = d.createElement("div");
    host.id = "webwidget-" + id;
    if ((opt.position || config.position) === "left") host.className = "L";
    root = host.attachShadow({ mode: "open" });
    // A constructed sheet is not inline style, so hosts with a strict CSP need no 'unsafe-inline'.
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      var style = d.createElement("style");
      style.textContent = CSS;
      root.appendChild(style);
    }
    root.innerHTML +=
      '<button class="l" type="button" aria-controls="p"><svg width="28" height="28" viewBox="0 0 24 24" ' +
      'aria-hidden="true"><path class="i" fill="currentColor" d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 ' +
      '0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/><path class="x" stroke="currentColor" stroke-width="2.5" ' +
      'stroke-linecap="round" d="M6 6l12 12M18 6 6 18"/></svg><span class="b" aria-hidden="true" hidden>' +
      '</span></button><div class="p" id="p" hidden></div><span class="v" role="status"></span>';
    launcher = root.querySelector(".l");
    badge = root.querySelector(".b");
    panel = root.querySelector(".p");
    live = root.querySelector(".v");
    var colors = config.colors || {};
    var light = opt.color ? [opt.color, "#fff"] : colors.light, dark = opt.color ? light : colors.dark;
    [["--c", light && light[0]], ["--o", light && light[1]], ["--cd", dark && dark[0]], ["--od", dark && dark[1]]]
      .forEach(function (p) { if (p[1]) launcher.style.setProperty(p[0], p[1]); });
    // The theme's panel_radius and shadow (a CSSOM property is no inline style to a host CSP).
    var shape = config.panel || {};
    if (typeof shape.radius === "number") panel.style.setProperty("--r", shape.radius + "px");
    if (typeof shape.shadow === "string") panel.style.setProperty("--s", shape.shadow);
    launcher.addEventListener("click", function () { if (open) hide(); else show(); });
    d.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && open) { hide(); launcher.focus(); }
    });
    setInterval(function () { if (open) tellPage(); }, 1000);
    render();
    d.body.appendChild(host);
    fire("ready");
    if (wanted) show();
    else if (stored(":open", sessionStorage)) show(true);
    else ask();
  }

  w.WebWidget = {
    open: function () { show(); },
    close: function () { hide(); },
    toggle: function () { if (open || wanted) hide(); else show(); },
    isOpen: function () { return open; }
  };
  if (d.body) configure(); else d.addEventListener("DOMContentLoaded", configure);
})(window, document);
