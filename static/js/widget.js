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

  // The loader shows its panel and asks for focus at once, but its message may come
  // before this document knows its frame is displayed again: focus() in a display:none
  // frame does nothing. So keep trying for a while, until the visitor does something.
  var focusTicket = 0;
  function focusWhenShown() {
    var ticket = ++focusTicket, until = Date.now() + 5000;
    (function attempt() {
      if (ticket !== focusTicket) return;
      focusComposer();
      var active = document.activeElement;
      if ((active && active !== document.body) || Date.now() > until) return;
      setTimeout(attempt, 50);
    })();
  }
  ["pointerdown", "keydown"].forEach(function (type) {
    document.addEventListener(type, function () { focusTicket++; }, true);
  });

  // --- the live region ------------------------------------------------------------------
  // The log reads out every element put into it. A message it already showed that comes
  // back (a status change replaces it, a full list re-renders it) and the pending copy of
  // the visitor's own are marked off, so each message is announced once.
  function quiet(el) { el.setAttribute("aria-live", "off"); }
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var el = log(), fragment = event.detail.fragment, target = event.detail.target;
    if (!el || !fragment || !target || !(target === el || el.contains(target))) return;
    var found = fragment.querySelectorAll ? [].slice.call(fragment.querySelectorAll("[data-message-id]")) : [];
    if (fragment.matches && fragment.matches("[data-message-id]")) found.push(fragment);
    found.forEach(function (m) {
      if (byId(m.id) && byId(m.id).closest("#ww-log")) quiet(m);
    });
  });

  // --- the host page ------------------------------------------------------------------------
  // A single-page app's route changed: a chat started now names the page the visitor is on.
  var hostPage = null;
  function followPage(url) {
    hostPage = url;
    document.querySelectorAll("input[name=page_url]").forEach(function (input) { input.value = url; });
  }
  // A welcome view swapped in later (after End chat) starts from that page too.
  document.addEventListener("htmx:afterSwap", function () { if (hostPage) followPage(hostPage); });

  // --- quick replies ------------------------------------------------------------------------
  // A choice hides once it is not the newest message's (messages.css): the cursor goes
  // to the composer instead of falling to <body>.
  document.addEventListener("htmx:confirm", function (event) {
    var form = event.detail.elt;
    if (form && form.classList && form.classList.contains("ww-choice")) focusComposer();
  });

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

  // --- the outbox ----------------------------------------------------------------------------
  // What the visitor sent that ChatCaptain has not acknowledged yet, oldest first. A send
  // leaves the box at once (so typing goes on) and waits here as a bubble until a 2xx that
  // means "stored"; one is on the wire at a time, so messages keep their order. Without a
  // connection it waits and goes by itself when the connection is back; a refusal keeps it
  // for the visitor to retry or discard. Every attempt carries the same client_id, so the
  // upstream stores it once however often it goes.
  var outbox = [];
  var pending = new WeakMap(); // htmx request config -> the entry it carries
  var issuing = null;          // the entry whose request htmx is building right now
  var inFlight = null;
  // Longer than the server's own upstream timeouts: a timeout here means the network.
  var SEND_TIMEOUT = 30000;

  function composer() { return byId("ww-composer"); }

  // The entry's words as a visitor bubble at the end of the log, with its state.
  function bubbleFor(entry) {
    var bubble = document.createElement("article");
    bubble.className = "ww-msg ww-msg--visitor ww-msg--sending";
    quiet(bubble); // moved to the end after each swap: read out once stored, not per move
    var body = document.createElement("div");
    body.className = "ww-msg__body";
    body.textContent = entry.label;
    bubble.appendChild(body);
    var meta = byId("ww-pending-meta");
    if (meta) bubble.appendChild(meta.content.firstElementChild.cloneNode(true));
    bubble.wwEntry = entry;
    return bubble;
  }

  function render(entry) {
    var el = entry.bubble;
    el.setAttribute("data-ww-pending", entry.state);
    el.classList.toggle("ww-msg--unsent", entry.state === "waiting" || entry.state === "failed");
    var state = el.querySelector(".ww-pending__state");
    if (state) state.textContent = state.getAttribute("data-" + entry.state) || "";
  }

  // Pending bubbles stay after the stored messages, also when a swap replaced the log.
  function outboxToLog() {
    var el = log();
    if (!el) return;
    outbox.forEach(function (entry) { el.appendChild(entry.bubble); });
  }

  function setState(entry, state) { entry.state = state; render(entry); }

  function add(fields, label) {
    var entry = { fields: fields, label: label, state: "queued" };
    entry.bubble = bubbleFor(entry);
    // Behind one that waits for the connection, it waits too.
    if (outbox.some(function (e) { return e.state === "waiting"; })) entry.state = "waiting";
    outbox.push(entry);
    render(entry);
    outboxToLog();
    showNewest();
    flush();
  }

  function remove(entry) {
    var at = outbox.indexOf(entry);
    if (at >= 0) outbox.splice(at, 1);
    if (entry.bubble.parentNode) entry.bubble.parentNode.removeChild(entry.bubble);
  }

  // Send the oldest entry if it may go; the rest follow one by one as each is stored.
  function flush() {
    var entry = outbox[0];
    if (inFlight || !entry || entry.state !== "queued") return;
    var form = composer();
    if (!form || !window.htmx) return;
    if (navigator.onLine === false) return offline();
    setState(entry, "sending");
    inFlight = entry;
    issuing = entry;
    var request;
    try {
      request = window.htmx.ajax("POST", form.getAttribute("hx-post"), {
        source: form, values: entry.fields, swap: "none",
      });
    } finally {
      issuing = null;
    }
    // Settles after htmx:afterRequest; a request htmx never made (the form left the page)
    // or one that failed on the wire waits for the connection.
    var unsettled = function () { if (inFlight === entry) settle(entry, "network"); };
    if (request && request.then) request.then(unsettled, unsettled);
    else unsettled();
  }

  // Waiting entries go again (the connection is back); a refused one still needs the visitor.
  function resume() {
    for (var i = 0; i < outbox.length && outbox[i].state !== "failed"; i++) {
      if (outbox[i].state === "waiting") setState(outbox[i], "queued");
    }
    flush();
  }

  // The visitor's retry: every entry that did not go, in order.
  function retryAll() {
    outbox.forEach(function (entry) {
      if (entry.state === "waiting" || entry.state === "failed") setState(entry, "queued");
    });
    flush();
  }

  function offline() {
    outbox.forEach(function (entry) {
      if (entry.state === "queued" || entry.state === "sending") setState(entry, "waiting");
    });
    clientNotice("ww-notice-offline");
  }

  // What the answer to an entry's request means: stored, refused, or never arrived.
  function outcome(detail) {
    var xhr = detail.xhr;
    if (!xhr || !xhr.status) return "network";
    if (xhr.status < 200 || xhr.status >= 300) return "refused";
    // A 2xx that puts another view or a notice in place (the chat is gone), or that is the
    // page after a redirect, is not "stored".
    if (xhr.getResponseHeader("HX-Retarget")) return "refused";
    var asked = (detail.pathInfo && detail.pathInfo.requestPath) || "";
    var answered = (detail.pathInfo && detail.pathInfo.responsePath) || asked;
    if (answered.split("?")[0] !== asked.split("?")[0]) return "refused";
    return "stored";
  }

  function settleSend(entry, detail) {
    pending.delete(detail.requestConfig);
    settle(entry, outcome(detail));
  }

  function settle(entry, result) {
    if (inFlight !== entry) return;
    inFlight = null;
    if (result === "stored") {
      remove(entry);
      clearClientNotice();
      if (awaitingReply()) expectReply(TYPING_TIMEOUT);
      showNewest();
      flush();
      return;
    }
    stopTyping();
    if (result === "network") return offline();
    // Taken over meanwhile: the kept-words view of a lost chat holds it (outboxToDraft).
    if (outbox.indexOf(entry) < 0) return;
    var box = byId("ww-text");
    var form = composer();
    if (outbox.length === 1 && entry.fields.text && box && form && !box.value.trim()) {
      // Alone and nothing typed since: the words go back into the box with their id, so
      // "Retry now" (or Enter) sends them once.
      remove(entry);
      box.value = entry.fields.text;
      form.elements.client_id.value = entry.fields.client_id;
      fitComposer();
      box.focus();
      return;
    }
    setState(entry, "failed");
    // Those behind it wait for it: order is kept.
    outbox.forEach(function (e) { if (e.state === "queued") setState(e, "waiting"); });
  }

  // The composer: what is in the box joins the outbox (after any entry that did not go);
  // "Retry now" of a notice retries the outbox and leaves a half-typed text alone.
  function submitComposer(form, submitter) {
    var retry = submitter && submitter.classList && submitter.classList.contains("ww-retry");
    var box = form.elements.text;
    var text = box.value.trim();
    if (outbox.length) retryAll();
    if (!text || (retry && outbox.length)) return;
    add({ text: text, client_id: form.elements.client_id.value }, text);
    box.value = "";
    form.elements.client_id.value = newClientId();
    fitComposer();
    box.focus();
  }

  // A quick reply is a send too, with its own id so a repeat is stored once.
  function submitChoice(form) {
    if (!composer()) return false;
    var label = form.elements.button_label.value, value = form.elements.button_value.value;
    if (outbox.length) retryAll();
    add({ text: "", button_label: label, button_value: value, client_id: newClientId() },
      label || value);
    return true;
  }

  // The chat was gone when a send arrived (views.kept_words): the server's view holds that
  // message's words for a new chat, and whatever else waited joins them, so the one action
  // there ("Start a new chat and send") takes them all.
  function outboxToDraft() {
    var draft = byId("ww-draft");
    if (!draft || !outbox.length) return;
    var words = [draft.value];
    outbox.forEach(function (entry) {
      var text = entry.fields.text || entry.label;
      if (text && words.indexOf(text) < 0) words.push(text);
    });
    draft.value = words.join("\n\n");
    outbox.slice().forEach(remove);
  }

  // --- notices the page shows by itself ----------------------------------------------------
  // Rendered (translated) by the server in <template>s; marked so an answer that arrives
  // later knows they are ours to clear.
  function clientNotice(id) {
    var status = byId("ww-status"), source = byId(id);
    if (!status || !source) return;
    var shown = status.querySelector("[data-ww-client]");
    if (shown && shown.getAttribute("data-ww-client") === id) return;
    // A notice the server sent (a refused send) says more: keep it.
    if (status.textContent.trim() && !shown) return;
    var notice = source.content.firstElementChild.cloneNode(true);
    notice.setAttribute("data-ww-client", id);
    status.replaceChildren(notice);
    if (window.htmx) window.htmx.process(notice);
  }

  function clearClientNotice() {
    var status = byId("ww-status");
    var shown = status && status.querySelector("[data-ww-client]");
    if (shown) shown.remove();
  }

  // A poll that got through means the connection is back; one that did not, that it is not.
  function afterPoll(xhr) {
    if (!xhr.status) {
      clientNotice(outbox.length ? "ww-notice-offline" : "ww-notice-reconnecting");
      return;
    }
    clearClientNotice();
    resume();
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
    } else if (data.type === "ww:page" && typeof data.page === "string") {
      followPage(data.page.slice(0, 2048));
    } else if (data.type === "ww:focus") {
      // The panel (re)opened: the newest message in view, the cursor in the composer
      // (not when it reopened by itself on the site's next page: `quiet`).
      showNewest();
      if (!data.quiet) focusWhenShown();
      tellSeen();
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

  // Where our cookie is blocked the transcript link alone reaches no session: fetch the
  // file with the handle and save what came.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("[data-ww-transcript]");
    if (!link || !handle || !window.fetch) return;
    event.preventDefault();
    var headers = {};
    headers[HEADER] = handle;
    fetch(link.href, { headers: headers, credentials: "same-origin" })
      .then(function (answer) { if (!answer.ok) throw answer; return answer.blob(); })
      .then(function (blob) {
        var save = document.createElement("a");
        save.href = URL.createObjectURL(blob);
        save.download = link.getAttribute("download") || "";
        document.body.appendChild(save);
        save.click();
        save.remove();
        setTimeout(function () { URL.revokeObjectURL(save.href); }, 10000);
      }, function () {});
  });

  document.addEventListener("htmx:configRequest", function (event) {
    if (handle) event.detail.headers[HEADER] = handle;
    if (!issuing) return;
    // The outbox's own send: its values stand in for the (by now empty) box.
    pending.set(event.detail, issuing);
    event.detail.errors = [];
    event.detail.timeout = SEND_TIMEOUT;
  });

  // Every send goes through the outbox (htmx's own request for the form is not made).
  document.addEventListener("htmx:confirm", function (event) {
    var form = event.detail.elt;
    if (issuing || !form) return;
    if (form.id === "ww-composer") {
      event.preventDefault();
      var trigger = event.detail.triggeringEvent;
      submitComposer(form, trigger && trigger.submitter);
    } else if (form.classList && form.classList.contains("ww-choice") && submitChoice(form)) {
      event.preventDefault();
    }
  });

  // A pending bubble's own buttons: send it now, or let it go.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-ww-outbox]");
    var bubble = button && button.closest(".ww-msg--sending");
    if (!bubble || !bubble.wwEntry || bubble.wwEntry === inFlight) return;
    if (button.getAttribute("data-ww-outbox") === "discard") {
      var head = outbox[0] === bubble.wwEntry;
      remove(bubble.wwEntry);
      if (!outbox.length) clearClientNotice();
      if (head) resume();
      focusComposer();
    } else {
      retryAll();
    }
  });

  // Back online: what waited goes now, and a poll brings the conversation up to date.
  window.addEventListener("online", function () {
    resume();
    var poller = byId("ww-poller");
    if (poller && window.htmx) window.htmx.trigger(poller, "ww:visible");
  });

  // A new view in #ww-main (chat started, recovered, ended, restored with the handle).
  document.addEventListener("htmx:afterSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "ww-main") return;
    localTimes();
    watchLog();
    outboxToDraft();
    outboxToLog();
    showNewest();
    fitComposer();
    tellSeen();
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
    var config = event.detail.requestConfig || {};
    if (pending.has(config)) settleSend(pending.get(config), event.detail);
    else if (event.detail.elt && event.detail.elt.id === "ww-poller") {
      afterPoll(xhr);
      afterHeldPoll(event.detail.elt, xhr);
    }
  });

  // Count bot messages an update adds (for the loader's unread badge); updates append
  // only new messages where they can, so the live region announces just those.
  var newestBot = null;
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    // A refused send's notice ("Not sent", "Too many requests…") stays up while its words
    // wait in the box or the outbox; a poll may not clear it.
    var box = byId("ww-text");
    var waiting = (box && box.value.trim()) || outbox.some(function (e) { return e.state === "failed"; });
    if (target && target.id === "ww-status" && waiting &&
        target.querySelector(".ww-notice--send_failed, .ww-notice--error") &&
        !event.detail.fragment.textContent.trim()) {
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
    addedBots += added;
  });

  // The loader counts new bot messages for its badge while its panel is closed and,
  // while it is open, notes the newest one as seen (for the unread count on the site's
  // next pages, read without this frame).
  var addedBots = 0;
  function tellSeen() {
    var bots = document.querySelectorAll("#ww-log .ww-msg--bot[data-message-id]");
    var last = bots.length ? bots[bots.length - 1].getAttribute("data-message-id") : "";
    tell({ type: "ww:new", count: addedBots, last: last });
    addedBots = 0;
  }

  document.addEventListener("htmx:oobAfterSwap", function (event) {
    // Every swapped message (a replaced one too: its old element is gone) gets local times.
    localTimes();
    var el = log();
    if (!el || !(event.detail.target === el || el.contains(event.detail.target))) return;
    outboxToLog();
    if (addedBots) tellSeen();
    if (newestBot) {
      var bot = el.querySelector('[data-message-id="' + CSS.escape(newestBot) + '"]');
      newestBot = null;
      if (bot) afterBotMessage(bot);
    }
    followNewMessages();
  });

  // A hidden tab does not poll short; it polls at once when shown again (the poller listens
  // for ww:visible). A held poll (its trigger is "load") costs a request per change or
  // hold, so it carries on: a reply still reaches a hidden tab's badge.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (document.hidden && elt && elt.id === "ww-poller" && !heldPoller(elt)) event.preventDefault();
  });
  function heldPoller(elt) { return /^load\b/.test(elt.getAttribute("hx-trigger") || ""); }

  // A held poll whose answer did not replace its poller: the connection dropped (ask again
  // soon, as a short poller would), or a proxy answered with an error of its own, having
  // cut the held request: ask again with `cut`, and the server switches to short polls.
  var heldRetries = 0;
  function afterHeldPoll(elt, xhr) {
    if (!elt.isConnected || !heldPoller(elt)) { heldRetries = 0; return; }
    // Asked again, it answers at once (`now`): the page learns that the connection is back.
    elt.setAttribute(xhr.status ? "data-ww-cut" : "data-ww-now", "");
    heldRetries++;
    setTimeout(function () {
      if (elt.isConnected && window.htmx) window.htmx.trigger(elt, "ww:visible");
    }, Math.min(500 * heldRetries, 5000));
  }
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || elt.id !== "ww-poller") return;
    if (elt.hasAttribute("data-ww-cut")) event.detail.parameters.cut = "1";
    else if (elt.hasAttribute("data-ww-now")) event.detail.parameters.now = "1";
  });
  // Our answer to a held poll replaces the poller, and htmx then reports the request on
  // another element: afterPoll hears of it here, while the poller is still the request's.
  document.addEventListener("htmx:beforeOnLoad", function (event) {
    var elt = event.detail.elt, xhr = event.detail.xhr;
    if (elt && elt.id === "ww-poller" && heldPoller(elt) && xhr && xhr.status === 200) afterPoll(xhr);
  });
  // Offline: a held poll would hang until its hold ends; ending it lets the page say so
  // (and widget.js asks again, at once when the connection is back).
  window.addEventListener("offline", function () {
    var poller = byId("ww-poller");
    if (poller && heldPoller(poller) && window.htmx) window.htmx.trigger(poller, "htmx:abort");
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
