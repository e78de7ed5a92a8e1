// The iframe page's small script: the session handle hand-off with the loader, the
// unread count it shows, keeping the newest message in view, focus, local times, the
// typing indicator and a composer that never loses the visitor's words.
// Everything works without it; htmx only makes it smoother.
(function () {
  "use strict";
  var HEADER = "X-Widget-Session";
  var root = document.documentElement;
  // Rendered by the server only when the `page` the loader passed is an allowed origin.
  var host = root.getAttribute("data-host-origin");
  var embedded = !!host && window.parent !== window;
  var handle = null;
  // How close to the bottom (px) still counts as "reading the newest message".
  var PIN_SLACK = 48;
  // How long (ms) the typing indicator waits for the bot before it gives up.
  var TYPING_TIMEOUT = 15000;
  // After a message that announces a delay or a stream part: the announced time plus this.
  var TYPING_GRACE = 4000;
  var pinned = true;
  // Where showNewest left the log: only a scroll above it is the visitor leaving the end.
  var pinnedTop = 0;

  function byId(id) { return document.getElementById(id); }

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

  // --- focus -------------------------------------------------------------------------
  // The composer first; without one (welcome view, read-only) the main action.
  function focusComposer() {
    var candidates = ["#ww-text", "#ww-main .ww-button--primary", "#ww-main button"];
    for (var i = 0; i < candidates.length; i++) {
      var target = document.querySelector(candidates[i]);
      if (target) { target.focus(); return; }
    }
  }

  // --- the newest message in view -----------------------------------------------------
  function log() { return byId("ww-log"); }

  function atBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight <= PIN_SLACK;
  }

  function showNewest() {
    var el = log();
    if (el) { el.scrollTop = el.scrollHeight; pinnedTop = el.scrollTop; }
    pinned = true;
    var jump = byId("ww-jump");
    if (jump) jump.hidden = true;
  }

  // New messages: follow them when the visitor reads the end; otherwise keep their place
  // and offer a way down.
  function followNewMessages() {
    if (pinned) { showNewest(); return; }
    var jump = byId("ww-jump");
    if (jump) jump.hidden = false;
  }

  document.addEventListener("scroll", function (event) {
    var el = event.target;
    // A hidden frame (closed launcher) has no layout: its scroll position means nothing.
    if (!el || el.id !== "ww-log" || !el.clientHeight) return;
    if (atBottom(el)) {
      pinned = true;
      pinnedTop = el.scrollTop;
      var jump = byId("ww-jump");
      if (jump) jump.hidden = true;
    } else if (el.scrollTop < pinnedTop - PIN_SLACK) {
      // Not merely content growing below (an image's size arriving before the event of
      // our own scroll to the end): the visitor scrolled up to read.
      pinned = false;
    }
  }, true);

  // Images and media load after the swap and push the end down: follow them.
  document.addEventListener("load", function (event) {
    var el = log();
    if (pinned && el && el.contains(event.target)) showNewest();
  }, true);

  // The log changes size when the panel reopens (it had none while hidden), on rotation
  // and when the composer grows: stay at the end if the visitor was there.
  var watched = null;
  var resizes = window.ResizeObserver ? new ResizeObserver(function () {
    if (pinned) showNewest();
  }) : null;
  function watchLog() {
    var el = log();
    if (!resizes || el === watched) return;
    if (watched) resizes.unobserve(watched);
    watched = el;
    if (el) resizes.observe(el);
  }

  // --- local times ---------------------------------------------------------------------
  // The server writes UTC ("10:30 AM UTC") so it is right without script; here each
  // <time datetime> becomes the visitor's own clock, in the page's language.
  function localTimes() {
    var lang = root.getAttribute("lang") || undefined;
    var now = new Date();
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) return;
      var options = { hour: "numeric", minute: "2-digit" };
      if (when.toDateString() !== now.toDateString()) {
        options.month = "short";
        options.day = "numeric";
        if (when.getFullYear() !== now.getFullYear()) options.year = "numeric";
      }
      try {
        el.textContent = new Intl.DateTimeFormat(lang, options).format(when);
        el.title = new Intl.DateTimeFormat(lang, { dateStyle: "full", timeStyle: "short" }).format(when);
      } catch (e) { /* an unknown language tag: keep the server's UTC text */ }
    });
  }

  // --- typing indicator ----------------------------------------------------------------
  // Shown from a send (or a start without a greeting) until the bot's next message, longer
  // when that message announces a delay or is part of a stream, never past a timeout.
  var typingTimer = null;

  function stopTyping() {
    var box = byId("ww-typing");
    clearTimeout(typingTimer);
    typingTimer = null;
    if (box) { box.classList.remove("ww-typing--on"); box.querySelector(".ww-typing__text").textContent = ""; }
  }

  function expectReply(ms) {
    var box = byId("ww-typing");
    if (!box) return;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, ms);
    if (box.classList.contains("ww-typing--on")) return; // announced once, just waits longer
    box.classList.add("ww-typing--on");
    // Filled only now, so the polite live region speaks it once.
    box.querySelector(".ww-typing__text").textContent = box.getAttribute("data-label");
    if (pinned) showNewest();
  }

  // Whether the bot has not answered yet: no message at all, or the visitor's is the last.
  function awaitingReply() {
    var all = document.querySelectorAll("#ww-log [data-message-id]");
    return !all.length || !all[all.length - 1].classList.contains("ww-msg--bot");
  }

  // What the newest bot message says about more to come.
  function afterBotMessage(el) {
    var delay = parseInt(el.getAttribute("data-delay-ms") || "0", 10);
    if (delay > 0) expectReply(delay + TYPING_GRACE);
    else if (el.hasAttribute("data-stream")) expectReply(TYPING_GRACE);
    else stopTyping();
  }

  // --- the composer ----------------------------------------------------------------------
  function newClientId() {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  // The box grows with its text up to a limit (CSS max-height), then scrolls.
  function fitComposer() {
    var box = byId("ww-text");
    if (!box) return;
    box.style.height = "auto";
    box.style.height = box.scrollHeight + (box.offsetHeight - box.clientHeight) + "px";
    // The moment at "auto" gave the log more room and may have reset its scroll.
    if (pinned) showNewest();
  }

  // --- wiring ------------------------------------------------------------------------------
  // Where our cookie is blocked, the loader hands us the handle it kept; we then load
  // the visitor's conversation with it in the header.
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (!embedded || event.source !== window.parent || event.origin !== host || !data) return;
    if (data.type === "ww:hello") {
      byId("ww-close").hidden = false;
      if (typeof data.handle === "string" && data.handle && !handle) {
        handle = data.handle;
        keep(handle);
        if (!byId("ww-conversation") && window.htmx) {
          window.htmx.ajax("GET", location.pathname + location.search, { target: "#ww-main", swap: "innerHTML" });
        }
      }
    } else if (data.type === "ww:focus") {
      // The panel (re)opened: the newest message in view, the cursor in the composer.
      showNewest();
      focusComposer();
    }
  });

  // Runs after htmx's own start-up handler (htmx's script comes first), so from here on
  // the forms go through htmx; the attribute lets tests wait for that.
  document.addEventListener("DOMContentLoaded", function () {
    byId("ww-close").addEventListener("click", function () { tell({ type: "ww:close" }); });
    localTimes();
    watchLog();
    showNewest();
    fitComposer();
    root.setAttribute("data-ww-ready", "");
    tell({ type: "ww:ready" });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && embedded) tell({ type: "ww:close" });
  });

  document.addEventListener("htmx:configRequest", function (event) {
    if (handle) event.detail.headers[HEADER] = handle;
  });

  // A new view in #ww-main (chat started, recovered, ended, restored with the handle).
  document.addEventListener("htmx:afterSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "ww-main") return;
    localTimes();
    watchLog();
    showNewest();
    fitComposer();
    var active = document.activeElement;
    if (!active || active === document.body || !document.contains(active)) focusComposer();
    // A chat just started whose greeting is not there yet.
    var verb = event.detail.requestConfig && event.detail.requestConfig.verb;
    if (byId("ww-text") && verb === "post" && awaitingReply()) expectReply(TYPING_TIMEOUT);
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
    var ok = xhr.status >= 200 && xhr.status < 300;
    var config = event.detail.requestConfig || {};
    if (!form || form.id !== "ww-composer") {
      // A quick reply (a boosted form in the log) is a send too: the bot is on it.
      if (ok && config.verb === "post" && /\/send$/.test(config.path || "") && awaitingReply()) {
        expectReply(TYPING_TIMEOUT);
      }
      return;
    }
    // The real message (or nothing) replaces the optimistic copy.
    document.querySelectorAll(".ww-msg--sending").forEach(function (el) { el.remove(); });
    if (ok) {
      // Sent: clear the box and give the next message its own id.
      form.reset();
      form.elements.client_id.value = newClientId();
      fitComposer();
      if (awaitingReply()) expectReply(TYPING_TIMEOUT);
      showNewest();
    } else {
      // Not sent: the words stay in the box with the same id, so "Retry" sends them once.
      stopTyping();
      var box = byId("ww-text");
      if (box) box.focus();
    }
  });

  // A network failure never reaches afterRequest with a status: the text simply stays.
  document.addEventListener("htmx:sendError", function (event) {
    if (event.detail.elt && event.detail.elt.id === "ww-composer") {
      document.querySelectorAll(".ww-msg--sending").forEach(function (el) { el.remove(); });
    }
  });

  // Count bot messages an update adds (for the loader's unread badge); updates append
  // only new messages where they can, so the live region announces just those.
  var newestBot = null;
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    // "Not sent" stays up while its words wait in the box; a poll may not clear it.
    var box = byId("ww-text");
    if (target && target.id === "ww-status" && box && box.value.trim() &&
        target.querySelector(".ww-notice--send_failed") && !event.detail.fragment.textContent.trim()) {
      event.detail.shouldSwap = false;
      return;
    }
    if (!target || target.id !== "ww-log") return;
    var known = {};
    target.querySelectorAll("[data-message-id]").forEach(function (el) {
      known[el.getAttribute("data-message-id")] = true;
    });
    var fragment = event.detail.fragment, added = 0;
    // An append that a newer full list overtook (a poll and a send cross on the wire)
    // must not show a message twice.
    var append = !!(fragment.hasAttribute && fragment.hasAttribute("data-ww-append"));
    fragment.querySelectorAll("[data-message-id]").forEach(function (el) {
      if (known[el.getAttribute("data-message-id")]) {
        if (append) el.remove();
        return;
      }
      if (el.classList.contains("ww-msg--bot")) { added++; newestBot = el.getAttribute("data-message-id"); }
      else newestBot = null; // a visitor message after the bot's: still waiting for a reply
    });
    if (added) tell({ type: "ww:new", count: added });
  });

  document.addEventListener("htmx:oobAfterSwap", function (event) {
    // Every swapped message (a replaced one too: its old element is gone) gets local times.
    localTimes();
    var el = log();
    if (!el || !(event.detail.target === el || el.contains(event.detail.target))) return;
    if (newestBot) {
      var bot = el.querySelector('[data-message-id="' + CSS.escape(newestBot) + '"]');
      newestBot = null;
      if (bot) afterBotMessage(bot);
    }
    followNewMessages();
  });

  // Show the visitor's message at once while it is on its way.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    if (!form || form.id !== "ww-composer") return;
    var text = form.querySelector("textarea").value.trim();
    var el = log();
    if (!text || !el) return;
    var bubble = document.createElement("article");
    bubble.className = "ww-msg ww-msg--visitor ww-msg--sending";
    var body = document.createElement("div");
    body.className = "ww-msg__body";
    body.textContent = text;
    bubble.appendChild(body);
    el.appendChild(bubble);
    showNewest();
  });

  // A hidden tab does not poll; it polls at once when shown again (the poller listens for ww:visible).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (document.hidden && elt && elt.id === "ww-poller") event.preventDefault();
  });
  document.addEventListener("visibilitychange", function () {
    var poller = byId("ww-poller");
    if (!document.hidden && poller && window.htmx) window.htmx.trigger(poller, "ww:visible");
  });

  document.addEventListener("click", function (event) {
    var target = event.target.closest && event.target.closest("#ww-jump");
    if (target) { showNewest(); focusComposer(); }
  });

  // Editing the text makes it a new message with a new id; growing the box as it fills.
  document.addEventListener("input", function (event) {
    var box = event.target;
    if (box.id !== "ww-text") return;
    if (box.form && box.form.elements.client_id) box.form.elements.client_id.value = newClientId();
    fitComposer();
  });

  // Enter sends, Shift+Enter makes a new line.
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (box.id !== "ww-text" || event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    if (box.value.trim()) box.form.requestSubmit();
  });
})();
