/*! webwidget loader. Embed: <script src="https://chat.example.com/embed.js" data-widget="default" async></script>
 Options: data-position="left", data-lang="DE", data-title, data-color, data-storage="none". */
(function (w, d) {
  "use strict";
  var script = d.currentScript;
  if (!script || w.WebWidget) return;
  var opt = script.dataset;
  // The widget's origin is where this script came from; every message is checked against it.
  var origin = new URL(script.src).origin;
  var id = opt.widget || "default";
  var key = "webwidget:" + origin + ":" + id;
  var keep = opt.storage !== "none";
  var title = opt.title || "Chat";
  var host, root, launcher, badge, panel, frame, live;
  var open = false, ready = false, unread = 0;

  // The handle lives here only where the iframe cannot keep its cookie; never in a URL.
  function stored() {
    try { return keep && localStorage.getItem(key) || null; } catch (e) { return null; }
  }
  function store(handle) {
    if (!keep) return;
    try {
      if (handle) localStorage.setItem(key, handle); else localStorage.removeItem(key);
    } catch (e) { /* storage blocked: the cookie is all we have */ }
  }

  function fire(name, detail) {
    w.dispatchEvent(new CustomEvent("webwidget:" + name, { detail: detail || {} }));
  }
  function post(message) {
    if (frame && frame.contentWindow) frame.contentWindow.postMessage(message, origin);
  }

  function render() {
    launcher.setAttribute("aria-expanded", String(open));
    launcher.setAttribute("aria-label", open ? "Close " + title.toLowerCase()
      : "Open " + title.toLowerCase() + (unread ? " (" + unread + " new)" : ""));
    badge.textContent = unread > 9 ? "9+" : String(unread);
    badge.hidden = !unread || open;
    panel.hidden = !open;
    host.classList.toggle("o", open);
  }

  function frameSrc() {
    var page = location.href.split("#")[0];
    if (page.length > 2000) page = location.origin + location.pathname;
    var lang = opt.lang || d.documentElement.lang || "";
    return origin + "/w/" + encodeURIComponent(id) + "?page=" + encodeURIComponent(page) +
      (lang ? "&lang=" + encodeURIComponent(lang.slice(0, 16)) : "");
  }

  function show() {
    if (open || !panel) return;
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
    if (ready) post({ type: "ww:focus" });
    else frame.focus();
    fire("open");
  }
  function hide() {
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
      post({ type: "ww:hello", handle: stored() });
      if (open) post({ type: "ww:focus" });
    } else if (data.type === "ww:session" && typeof data.handle === "string" &&
        /^[\w.-]{0,400}$/.test(data.handle)) {
      store(data.handle);
    } else if (data.type === "ww:new" && data.count > 0 && !open) {
      unread += Math.min(data.count, 99);
      live.textContent = unread === 1 ? "1 new chat message" : unread + " new chat messages";
      render();
      fire("unread", { count: unread });
    } else if (data.type === "ww:close") {
      hide();
      launcher.focus();
    }
  });

  var CSS =
    ":host{all:initial}" +
    ".l{position:fixed;bottom:20px;right:20px;z-index:2147483000;width:56px;height:56px;" +
    "border:0;border-radius:50%;background:var(--c,#1f5fbf);color:#fff;cursor:pointer;" +
    "display:flex;align-items:center;justify-content:center;box-shadow:0 4px 14px rgba(0,0,0,.3)}" +
    ".l:focus-visible{outline:3px solid #0b57d0;outline-offset:3px;box-shadow:0 0 0 3px #fff}" +
    ".b{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 6px;" +
    "border-radius:10px;background:#b3261e;color:#fff;font:700 12px/20px system-ui,sans-serif}" +
    ".p{position:fixed;bottom:88px;right:20px;z-index:2147483000;width:380px;" +
    "height:min(640px,calc(100vh - 108px));border-radius:16px;overflow:hidden;" +
    "background:#fff;box-shadow:0 8px 30px rgba(0,0,0,.3)}" +
    ":host(.L) .l,:host(.L) .p{right:auto;left:20px}:host(.L) .b{right:auto;left:-4px}" +
    "[hidden]{display:none!important}" +
    "iframe{display:block;width:100%;height:100%;border:0}" +
    ".v{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}" +
    // Small screens: the open chat takes the whole screen and closes from inside the frame.
    "@media (max-width:480px){.p,:host(.L) .p{inset:0;width:auto;height:auto;border-radius:0}:host(.o) .l{display:none}}";

  function init() {
    host = d.createElement("div");
    host.id = "webwidget-" + id;
    if (opt.position === "left") host.className = "L";
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
      'aria-hidden="true" focusable="false"><path fill="currentColor" d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 ' +
      '0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/></svg><span class="b" aria-hidden="true" hidden>' +
      '</span></button><div class="p" id="p" hidden></div><span class="v" role="status"></span>';
    launcher = root.querySelector(".l");
    badge = root.querySelector(".b");
    panel = root.querySelector(".p");
    live = root.querySelector(".v");
    if (opt.color) launcher.style.setProperty("--c", opt.color);
    launcher.addEventListener("click", function () { if (open) hide(); else show(); });
    d.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && open) { hide(); launcher.focus(); }
    });
    render();
    d.body.appendChild(host);
    fire("ready");
  }

  w.WebWidget = {
    open: function () { show(); },
    close: function () { hide(); },
    toggle: function () { if (open) hide(); else show(); },
    isOpen: function () { return open; }
  };
  if (d.body) init(); else d.addEventListener("DOMContentLoaded", init);
})(window, document);
