"""The visitor's journey without JavaScript: plain forms, 303 redirects, full pages."""

from __future__ import annotations

import re
from dataclasses import dataclass

from conftest import HOST_ORIGIN, advance, faults, heal, https_client, parse_html, stats


@dataclass
class Hooks:
    """The design's page hooks: role=log elements, the data-message-id order, the forms."""

    logs: int
    message_ids: list[str]
    forms: list[dict[str, str | None]]


def hooks(html: str) -> Hooks:
    elements = parse_html(html).elements
    return Hooks(
        logs=sum(e.attrs.get("role") == "log" for e in elements),
        message_ids=[e.attrs["data-message-id"] for e in elements if "data-message-id" in e.attrs],
        forms=[e.attrs for e in elements if e.tag == "form"],
    )


def test_welcome_page_offers_a_start_form_and_creates_nothing_upstream(visitor, sandbox):
    page = visitor.get("/w/default")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert any(
        f.get("method") == "post" and f.get("action") == "/w/default/start"
        for f in hooks(html).forms
    )
    assert stats(sandbox)["create_contact"] == 0
    assert stats(sandbox)["create_conversation"] == 0


def test_start_redirects_to_the_conversation_with_the_greeting(visitor, sandbox):
    started = visitor.start()
    assert started.status_code == 303
    assert started.headers["Location"].endswith("/w/default")
    page = visitor.get("/w/default")
    html = page.get_data(as_text=True)
    found = hooks(html)
    assert found.logs == 1
    assert len(found.message_ids) == 1
    assert "Ahoy!" in html
    assert stats(sandbox)["create_contact"] == 1
    assert stats(sandbox)["create_conversation"] == 1


def test_conversation_page_refreshes_itself_without_javascript(visitor):
    visitor.start()
    html = visitor.get("/w/default").get_data(as_text=True)
    assert re.search(r'<noscript><meta http-equiv="refresh" content="\d+"></noscript>', html)


def test_send_then_reply_arrives_in_order(visitor, sandbox):
    visitor.start()
    sent = visitor.send("hello there")
    assert sent.status_code == 303
    advance(sandbox, 5)
    html = visitor.get("/w/default").get_data(as_text=True)
    ids = hooks(html).message_ids
    assert len(ids) == 3  # greeting, the visitor's message, the echo
    assert html.index("hello there") < html.index("You said: hello there")


def test_end_chat_deletes_the_session_and_shows_the_welcome_again(visitor, sandbox):
    visitor.start()
    ended = visitor.end()
    assert ended.status_code == 303
    html = visitor.get("/w/default").get_data(as_text=True)
    assert hooks(html).logs == 0
    assert "Start chat" in html


def test_a_replayed_handle_after_end_reaches_nothing(app, visitor):
    visitor.start()
    cookie = visitor.client.get_cookie("__Host-ww_session-default")
    assert cookie is not None
    visitor.end()
    stranger = https_client(app)
    html = stranger.get("/w/default", headers={"X-Widget-Session": cookie.value}).get_data(
        as_text=True
    )
    assert hooks(html).logs == 0


def test_the_handle_travels_in_a_header_when_cookies_are_dropped(app):
    client = https_client(app, use_cookies=False)
    started = client.post(
        "/w/default/start", headers={"Sec-Fetch-Site": "same-origin", "HX-Request": "true"}
    )
    assert started.status_code == 200
    handle = started.headers["X-Widget-Session"]
    assert handle
    page = client.get("/w/default", headers={"X-Widget-Session": handle})
    assert hooks(page.get_data(as_text=True)).logs == 1


def test_htmx_start_answers_with_the_conversation_fragment(visitor):
    started = visitor.post("/w/default/start", htmx=True)
    assert started.status_code == 200
    html = started.get_data(as_text=True)
    assert "<html" not in html
    assert 'id="ww-conversation"' in html


def test_unchanged_poll_is_204_and_a_change_sends_the_list(visitor, sandbox):
    visitor.start()
    first = visitor.get("/w/default/messages", headers={"HX-Request": "true"})
    assert first.status_code == 200
    version = re.search(r"/w/default/messages\?v=([0-9a-f]+)", first.get_data(as_text=True)).group(
        1
    )
    same = visitor.get(f"/w/default/messages?v={version}", headers={"HX-Request": "true"})
    assert same.status_code == 204
    assert same.get_data() == b""
    # No document, so no policy: the most frequent answer stays small on the wire.
    assert "Content-Security-Policy" not in same.headers
    visitor.send("ping")
    changed = visitor.get(f"/w/default/messages?v={version}", headers={"HX-Request": "true"})
    assert changed.status_code == 200
    assert "ping" in changed.get_data(as_text=True)


def test_language_comes_from_page_then_accept_language_then_setting(visitor, sandbox):
    from werkzeug.datastructures import LanguageAccept

    from webwidget.web.languages import choose_language

    assert choose_language("fr", LanguageAccept([("de-AT", 1)]), "EN") == "FR"
    assert choose_language(None, LanguageAccept([("de-AT", 1)]), "EN") == "DE"
    assert choose_language("", LanguageAccept([]), "EN") == "EN"
    assert choose_language("<script>", LanguageAccept([("*", 1)]), "IT") == "IT"


def test_start_from_a_page_outside_the_allowed_origins_is_refused(visitor, sandbox):
    refused = visitor.start(page_url="https://evil.example/page")
    assert refused.status_code == 400
    assert stats(sandbox)["create_contact"] == 0
    allowed = visitor.start(page_url=f"{HOST_ORIGIN}/pricing")
    assert allowed.status_code == 303


def test_unknown_widget_is_a_friendly_404_that_nobody_may_frame(visitor):
    page = visitor.get("/w/nope")
    assert page.status_code == 404
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "Traceback" not in page.get_data(as_text=True)


def test_widget_page_may_be_framed_only_by_allowed_origins(visitor):
    csp = visitor.get("/w/default").headers["Content-Security-Policy"]
    # Exactly the allowed origins: 'self' is added only in demo mode (tests/test_security.py).
    assert csp.endswith(f"frame-ancestors {HOST_ORIGIN}")
    assert "X-Frame-Options" not in visitor.get("/w/default").headers


def test_cross_site_post_is_refused_and_reaches_nothing_upstream(visitor, sandbox):
    refused = visitor.post("/w/default/start", headers={"Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403
    bare = visitor.client.post("/w/default/start")
    assert bare.status_code == 403
    assert stats(sandbox)["create_contact"] == 0


def test_upstream_down_gives_a_friendly_page_and_keeps_the_session(visitor, sandbox):
    visitor.start()
    faults(sandbox, error_status=503, error_rate=1.0)
    down = visitor.get("/w/default")
    assert down.status_code == 503
    assert "Reconnecting" in down.get_data(as_text=True)
    heal(sandbox)
    back = visitor.get("/w/default")
    assert back.status_code == 200
    assert len(hooks(back.get_data(as_text=True)).message_ids) >= 1


def test_poll_during_an_outage_is_a_status_htmx_understands(visitor, sandbox):
    visitor.start()
    faults(sandbox, error_status=500, error_rate=1.0)
    poll = visitor.get("/w/default/messages?v=x", headers={"HX-Request": "true"})
    assert poll.status_code in (502, 503, 504)
    assert 'id="ww-status"' in poll.get_data(as_text=True)


def test_expired_widget_token_is_renewed_without_the_visitor_noticing(visitor, sandbox):
    visitor.start()
    advance(sandbox, 4000)  # past the sandbox's one-hour token lifetime
    page = visitor.get("/w/default")
    assert page.status_code == 200
    assert "Ahoy!" in page.get_data(as_text=True)
    assert stats(sandbox)["create_conversation"] == 2  # the start, then the renewal
