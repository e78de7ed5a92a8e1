// The iframe page's small script: session handle transport and composer niceties.
// Everything works without it; htmx only makes it smoother.
(function () {
  "use strict";
  var HEADER = "X-Widget-Session";
  var handle = null;

  function remember(value) {
    handle = value || null;
    try {
      if (handle) sessionStorage.setItem("ww-session", handle);
      else sessionStorage.removeItem("ww-session");
    } catch (e) { /* storage blocked in this frame: the loader keeps it instead */ }
    if (window.parent !== window && parentOrigin) {
      window.parent.postMessage({ type: "ww:session", handle: handle }, parentOrigin);
    }
  }

  var parentOrigin = null;
  try { handle = sessionStorage.getItem("ww-session"); } catch (e) { handle = null; }

  // The loader tells us the host page's origin and, where our cookie is blocked, the handle.
  window.addEventListener("message", function (event) {
    if (event.source !== window.parent || !event.data || event.data.type !== "ww:hello") return;
    if (document.documentElement.dataset.hostOrigin !== event.origin) return;
    parentOrigin = event.origin;
    if (event.data.handle && !handle) {
      handle = event.data.handle;
      if (window.htmx) window.htmx.ajax("GET", location.pathname + location.search, { target: "#ww-main", select: "#ww-main > *" });
    }
  });

  document.addEventListener("htmx:configRequest", function (event) {
    if (handle) event.detail.headers[HEADER] = handle;
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var xhr = event.detail.xhr;
    if (!xhr) return;
    var value = xhr.getResponseHeader(HEADER);
    if (value !== null) remember(value);
    var form = event.detail.elt;
    if (form && form.id === "ww-composer" && event.detail.successful) form.reset();
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
    var p = document.createElement("p");
    p.textContent = text;
    bubble.appendChild(p);
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

  document.addEventListener("htmx:oobAfterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "ww-log") {
      event.detail.target.scrollTop = event.detail.target.scrollHeight;
    }
  });
})();
