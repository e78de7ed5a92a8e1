// The iframe page's small script: the session handle hand-off with the loader, the
// unread count it shows, and composer niceties.
// Everything works without it; htmx only makes it smoother.
(function () {
  "use strict";
  var HEADER = "X-Widget-Session";
  var root = document.documentElement;
  // Rendered by the server only when the `page` the loader passed is an allowed origin.
  var host = root.getAttribute("data-host-origin");
  var embedded = !!host && window.parent !== window;
  var handle = null;

  function tell(message) {
    if (embedded) window.parent.postMessage(message, host);
  }

  // The loader keeps the handle in the host page's storage only where our cookie is lost
  // (docs/embedding.md): a request without the header asks whether the cookie alone finds
  // the chat. If that check fails, keeping the handle is the safe side.
  function keep(value) {
    var check = document.querySelector("[data-cookie-check]");
    if (!value || !check || !window.fetch) return tell({ type: "ww:session", handle: value });
    fetch(check.getAttribute("data-cookie-check"), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (a) { tell({ type: "ww:session", handle: a.cookie ? "" : value }); },
        function () { tell({ type: "ww:session", handle: value }); });
  }

  function focusFirst() {
    var target = document.querySelector("#ww-text, #ww-main .ww-button--primary, #ww-main button");
    if (target) target.focus();
  }

  // Where our cookie is blocked, the loader hands us the handle it kept; we then load
  // the visitor's conversation with it in the header.
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (!embedded || event.source !== window.parent || event.origin !== host || !data) return;
    if (data.type === "ww:hello") {
      document.getElementById("ww-close").hidden = false;
      if (typeof data.handle === "string" && data.handle && !handle) {
        handle = data.handle;
        keep(handle);
        if (!document.getElementById("ww-conversation") && window.htmx) {
          window.htmx.ajax("GET", location.pathname + location.search, { target: "#ww-main", swap: "innerHTML" });
        }
      }
    } else if (data.type === "ww:focus") {
      focusFirst();
    }
  });

  // Runs after htmx's own start-up handler (htmx's script comes first), so from here on
  // the forms go through htmx; the attribute lets tests wait for that.
  document.addEventListener("DOMContentLoaded", function () {
    document.getElementById("ww-close").addEventListener("click", function () { tell({ type: "ww:close" }); });
    root.setAttribute("data-ww-ready", "");
    tell({ type: "ww:ready" });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && embedded) tell({ type: "ww:close" });
  });

  document.addEventListener("htmx:configRequest", function (event) {
    if (handle) event.detail.headers[HEADER] = handle;
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var xhr = event.detail.xhr;
    if (!xhr) return;
    // A new handle, or "" when the chat ended: keep it and let the loader keep it too.
    var value = xhr.getResponseHeader(HEADER);
    if (value !== null && value !== (handle || "")) {
      handle = value || null;
      keep(value);
    }
    var form = event.detail.elt;
    if (form && form.id === "ww-composer" && event.detail.successful) form.reset();
  });

  // Count bot messages an update adds (for the loader's unread badge); updates append
  // only new messages where they can, so the live region announces just those.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var log = event.detail.target;
    if (!log || log.id !== "ww-log") return;
    var added = 0;
    event.detail.fragment.querySelectorAll(".ww-msg--bot[data-message-id]").forEach(function (el) {
      var id = el.getAttribute("data-message-id"), known = false;
      log.querySelectorAll("[data-message-id]").forEach(function (old) {
        if (old.getAttribute("data-message-id") === id) known = true;
      });
      if (!known) added++;
    });
    // The real messages replace the optimistic copies.
    log.querySelectorAll(".ww-msg--sending").forEach(function (el) { el.remove(); });
    if (added) tell({ type: "ww:new", count: added });
  });

  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var log = document.getElementById("ww-log");
    // A send's answer and a poll that crossed it can both append the same new messages
    // (each saw the same version): keep the first copy of each.
    var seen = {};
    if (log) log.querySelectorAll("[data-message-id]").forEach(function (el) {
      var id = el.getAttribute("data-message-id");
      if (seen[id]) el.remove(); else seen[id] = true;
    });
    if (log && (event.detail.target === log || log.contains(event.detail.target))) log.scrollTop = log.scrollHeight;
  });

  // Show the visitor's message at once while it is on its way.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    if (!form || form.id !== "ww-composer") return;
    var text = form.querySelector("textarea").value.trim();
    var log = document.getElementById("ww-log");
    if (!text || !log) return;
    var bubble = document.createElement("article");
    bubble.className = "ww-msg ww-msg--visitor ww-msg--sending";
    var body = document.createElement("div");
    body.className = "ww-msg__body";
    body.textContent = text;
    bubble.appendChild(body);
    log.appendChild(bubble);
    log.scrollTop = log.scrollHeight;
  });

  // A hidden tab does not poll; it polls at once when shown again (the poller listens for ww:visible).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (document.hidden && elt && elt.id === "ww-poller") event.preventDefault();
  });
  document.addEventListener("visibilitychange", function () {
    var poller = document.getElementById("ww-poller");
    if (!document.hidden && poller && window.htmx) window.htmx.trigger(poller, "ww:visible");
  });

  // Enter sends, Shift+Enter makes a new line.
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (box.id !== "ww-text" || event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    if (box.value.trim()) box.form.requestSubmit();
  });
})();
