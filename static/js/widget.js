// The iframe page's small script: the session handle hand-off with the loader, message
// merging (so screen readers hear only new messages) and composer niceties.
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
        if (!document.getElementById("ww-conversation") && window.htmx) {
          window.htmx.ajax("GET", location.pathname + location.search, { target: "#ww-main", swap: "innerHTML" });
        }
      }
    } else if (data.type === "ww:focus") {
      focusFirst();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.getElementById("ww-close").addEventListener("click", function () { tell({ type: "ww:close" }); });
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
      tell({ type: "ww:session", handle: value });
    }
    var form = event.detail.elt;
    if (form && form.id === "ww-composer" && event.detail.successful) form.reset();
  });

  // Updates carry the whole list; merge it so that only new messages enter the live
  // region (a full replacement would make screen readers read the log again).
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var log = event.detail.target;
    if (!log || log.id !== "ww-log") return;
    event.detail.shouldSwap = false;
    var have = Object.create(null);
    log.querySelectorAll("[data-message-id]").forEach(function (el) { have[el.getAttribute("data-message-id")] = el; });
    var keep = [], added = 0, prev = null;
    Array.prototype.slice.call(event.detail.fragment.children).forEach(function (next) {
      var old = have[next.getAttribute("data-message-id")], node = next;
      if (old && old.innerHTML === next.innerHTML) {
        old.className = next.className;
        node = old;
      } else if (!old && next.classList.contains("ww-msg--bot")) {
        added++;
      }
      var place = prev ? prev.nextSibling : log.firstChild;
      if (node !== place) log.insertBefore(node, place);
      if (old && old !== node) log.removeChild(old);
      keep.push(node);
      prev = node;
    });
    Array.prototype.slice.call(log.children).forEach(function (el) {
      if (keep.indexOf(el) < 0) log.removeChild(el);
    });
    window.htmx.process(log);
    log.scrollTop = log.scrollHeight;
    if (added) tell({ type: "ww:new", count: added });
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

  // Enter sends, Shift+Enter makes a new line.
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (box.id !== "ww-text" || event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    if (box.value.trim()) box.form.requestSubmit();
  });
})();
