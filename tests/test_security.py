"""Security promises of issue 5, end to end through the widget app on the sandbox.

CSRF (who may change state), framing, our own pages' headers (CSP, nosniff, referrer,
no-store, HSTS) and session hardening (forged, strange, rotated, expired, ended and
corrupt handles). Unit behaviour of the session layer lives in test_sessions.py.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import (
    HOST_ORIGIN,
    Visitor,
    corrupt_session,
    https_client,
    make_app,
    parse_html,
    stats,
)
from werkzeug.http import parse_cookie

ROOT = Path(__file__).resolve().parent.parent
OWN_ORIGIN = "https://localhost"
UPSTREAM_WRITES = ("create_contact", "create_conversation", "send_message")



@pytest.fixture
def one_app(sandbox, tmp_path):
    """For checks that do not depend on the session store: SQLite only."""
    return make_app(sandbox, tmp_path)


@pytest.fixture
def guest(one_app):
    """A visitor of one_app."""
    return Visitor(https_client(one_app))


def handle_of(response) -> str:
    """The session handle a response issued."""
    return response.headers["X-Widget-Session"]


def sid_of(handle: str) -> str:
    """The session id inside a signed handle (the part before the signature)."""
    return handle.split(".", 1)[0]


def store_of(app):
    from webwidget.sessions import get_store

    return get_store(app)


def fresh_client(app, handle=None, *, via="cookie"):
    """A client that holds only `handle`, in the cookie or in the header."""
    client = https_client(app)
    if handle and via == "cookie":
        client.set_cookie("__Host-ww_session-default", handle, domain="localhost")
    if handle and via == "header":
        client.environ_base["HTTP_X_WIDGET_SESSION"] = handle
    return client


# --- 1. CSRF ---------------------------------------------------------------------------

ACCEPTED = {
    "fetch metadata same-origin (what a plain form in the iframe sends)": {
        "Sec-Fetch-Site": "same-origin"
    },
    "no fetch metadata, Origin is ours": {"Origin": OWN_ORIGIN},
    "htmx in the iframe": {"Sec-Fetch-Site": "same-origin", "HX-Request": "true"},
}

REFUSED = {
    "nothing at all": {},
    "same-site": {"Sec-Fetch-Site": "same-site"},
    "cross-site": {"Sec-Fetch-Site": "cross-site"},
    "none (typed or bookmarked)": {"Sec-Fetch-Site": "none"},
    "cross-site even with our Origin": {"Sec-Fetch-Site": "cross-site", "Origin": OWN_ORIGIN},
    "Origin null": {"Origin": "null"},
    "Origin of an allowed host page": {"Origin": HOST_ORIGIN},
    "Origin of ours over http": {"Origin": "http://localhost"},
    "Origin of a look-alike": {"Origin": "https://localhost.evil.example"},
    "HX-Request other than true": {"Sec-Fetch-Site": "same-origin", "HX-Request": "1"},
}


@pytest.mark.parametrize("headers", ACCEPTED.values(), ids=list(ACCEPTED))
def test_same_origin_start_is_accepted(guest, sandbox, headers):
    response = guest.client.post("/w/default/start", data={}, headers=headers)
    assert response.status_code in (200, 303)
    assert stats(sandbox)["create_contact"] == 1


@pytest.mark.parametrize("headers", REFUSED.values(), ids=list(REFUSED))
def test_cross_origin_start_is_refused_and_nothing_reaches_upstream(guest, sandbox, headers):
    response = guest.client.post("/w/default/start", data={}, headers=headers)
    assert response.status_code == 403
    assert "Not allowed" in response.get_data(as_text=True)
    assert "Set-Cookie" not in response.headers
    assert all(stats(sandbox)[op] == 0 for op in UPSTREAM_WRITES)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", "text=hello"),  # <form enctype="text/plain">, navigator.sendBeacon
        ("application/json", json.dumps({"text": "hello"})),
    ],
)
def test_a_non_form_body_needs_the_htmx_header(guest, sandbox, content_type, body):
    plain = guest.client.post(
        "/w/default/start",
        data=body,
        content_type=content_type,
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert plain.status_code == 403
    assert stats(sandbox)["create_contact"] == 0
    htmx = guest.client.post(
        "/w/default/start",
        data=body,
        content_type=content_type,
        headers={"Sec-Fetch-Site": "same-origin", "HX-Request": "true"},
    )
    assert htmx.status_code == 200
    assert stats(sandbox)["create_contact"] == 1


def test_multipart_form_without_javascript_works(guest, sandbox):
    response = guest.client.post(
        "/w/default/start",
        data={"lang": "DE"},
        content_type="multipart/form-data",
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 303
    assert 'role="log"' in guest.get("/w/default").get_data(as_text=True)


def test_send_and_end_from_another_site_change_nothing(guest, sandbox):
    guest.start()
    before = stats(sandbox)
    for path, data in (("/w/default/send", {"text": "hi"}), ("/w/default/end", {})):
        for headers in REFUSED.values():
            assert guest.client.post(path, data=data, headers=headers).status_code == 403
    assert stats(sandbox) == before
    # The chat is still there: end was refused every time.
    assert 'role="log"' in guest.get("/w/default").get_data(as_text=True)


def state_changing_routes(app) -> list[tuple[str, str]]:
    """Every route that takes a method other than GET, with its widget filled in."""
    routes = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"GET", "HEAD", "OPTIONS"}):
            path = re.sub(r"<(widget|widget_id)>", "default", rule.rule)
            assert "<" not in path, f"fill in the variable of {rule.rule}"
            routes.append((method, path))
    return routes


@pytest.mark.parametrize("via", ["cookie", "header"])
def test_every_state_changing_route_refuses_other_sites_whichever_way_the_handle_comes(
    one_app, guest, sandbox, via
):
    routes = state_changing_routes(one_app)
    assert {("POST", f"/w/default/{name}") for name in ("start", "send", "end")} <= set(routes)
    handle = handle_of(guest.start())
    record = store_of(one_app).load(sid_of(handle)).data
    # The handle as the loader hands it over (X-Widget-Session) or as the iframe keeps it.
    holder = fresh_client(one_app, handle, via=via)
    before = stats(sandbox)
    for method, path in routes:
        for name, headers in REFUSED.items():
            for htmx in ({}, {"HX-Request": "true"}):
                response = holder.open(
                    path, method=method, data={"text": "hi"}, headers={**htmx, **headers}
                )
                assert response.status_code == 403, (method, path, name, htmx)
                assert "Set-Cookie" not in response.headers, (path, name)
                assert "X-Widget-Session" not in response.headers, (path, name)
    after = stats(sandbox)
    assert all(after[op] == before[op] for op in UPSTREAM_WRITES)
    assert store_of(one_app).load(sid_of(handle)).data == record
    # The same holder, same-origin, still reaches its chat: the refusals ended nothing.
    assert 'role="log"' in holder.get("/w/default").get_data(as_text=True)


def test_htmx_refusal_is_a_fragment_for_the_status_area(guest):
    response = guest.client.post(
        "/w/default/start", headers={"Sec-Fetch-Site": "cross-site", "HX-Request": "true"}
    )
    assert response.status_code == 403
    assert response.headers["HX-Retarget"] == "#ww-status"
    assert "<html" not in response.get_data(as_text=True)


def test_no_cors_preflight_is_ever_granted(guest):
    preflight = guest.client.options(
        "/w/default/start",
        headers={
            "Origin": HOST_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "hx-request, x-widget-session",
        },
    )
    assert not [name for name in preflight.headers.keys() if name.startswith("Access-Control")]


def get_routes(app):
    """Every GET route's rule with its widget filled in, except static and the demo."""
    rules = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        path = re.sub(r"<(widget|widget_id)>", "default", rule.rule)
        assert "<" not in path, f"fill in the variable of {rule.rule}"
        rules.append(path)
    return rules


def test_get_never_changes_state(one_app, guest, sandbox):
    routes = get_routes(one_app)
    assert "/w/default" in routes and "/w/default/messages" in routes
    anonymous = https_client(one_app)
    for path in routes:
        response = anonymous.get(path)
        response.close()  # static-file answers hold an open file
        assert response.status_code < 500, path
        assert "Set-Cookie" not in response.headers, path
    assert all(stats(sandbox)[op] == 0 for op in UPSTREAM_WRITES)

    handle = handle_of(guest.start())
    sid = sid_of(handle)
    record = store_of(one_app).load(sid).data
    before = stats(sandbox)
    for path in (*routes, "/w/default/messages?v=stale", "/w/default?page=x"):
        response = guest.get(path)
        response.close()
        assert response.status_code < 500, path
        assert "Set-Cookie" not in response.headers, path
        assert "X-Widget-Session" not in response.headers, path
    after = stats(sandbox)
    assert all(after[op] == before[op] for op in UPSTREAM_WRITES)
    assert after["list_messages"] > before["list_messages"]  # the GETs did read the chat
    assert store_of(one_app).load(sid).data == record


# --- 2. Framing ------------------------------------------------------------------------


def csp_directive(response, name: str) -> str:
    """One directive of the response's CSP, without its name."""
    for part in response.headers["Content-Security-Policy"].split(";"):
        words = part.split()
        if words and words[0] == name:
            return " ".join(words[1:])
    raise AssertionError(f"{name} missing from the CSP")


def test_frame_ancestors_lists_exactly_the_allowed_origins(sandbox, tmp_path):
    app = make_app(
        sandbox, tmp_path, WIDGET_ALLOWED_ORIGINS="https://a.example, https://b.example:8443/"
    )
    client = https_client(app)
    page = client.get("/w/default")
    assert csp_directive(page, "frame-ancestors") == "https://a.example https://b.example:8443"
    assert "X-Frame-Options" not in page.headers
    # Every answer under a widget's URL keeps its framing, errors included (405 has no route).
    assert csp_directive(client.get("/w/default/start"), "frame-ancestors").startswith("https://a")
    refused = client.post("/w/default/end")
    assert refused.status_code == 403
    assert csp_directive(refused, "frame-ancestors") == "https://a.example https://b.example:8443"


def test_each_widget_is_framed_only_by_its_own_origins(sandbox, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "widgets.toml").write_text(
        "".join(
            f"[widgets.{name}]\n"
            'chatbot_id = "demo-bot"\nchannel_id = "channel_abc123"\n'
            'channel_token = "channel_token_xyz789"\n'
            f'allowed_origins = ["https://{name}.example"]\n\n'
            for name in ("shop", "docs")
        ),
        encoding="utf-8",
    )
    app = make_app(sandbox, tmp_path, WIDGETS_FILE=str(site / "widgets.toml"))
    for name, other in (("shop", "docs"), ("docs", "shop")):
        visitor = Visitor(https_client(app))
        answers = {
            "page": visitor.get(f"/w/{name}"),
            "started": visitor.start(name),
            "conversation": visitor.get(f"/w/{name}"),
            "poll": visitor.get(f"/w/{name}/messages?v=x", headers={"HX-Request": "true"}),
            "405": visitor.get(f"/w/{name}/send"),
            "403": visitor.client.post(f"/w/{name}/end", headers={"Sec-Fetch-Site": "cross-site"}),
            "413": visitor.send("x" * 40_000, widget=name),
            "404 inside the widget": visitor.get(f"/w/{name}/nothing"),
        }
        for what, response in answers.items():
            assert "Content-Security-Policy" in response.headers, (name, what, response.status)
            ancestors = csp_directive(response, "frame-ancestors")
            assert ancestors == f"https://{name}.example", (name, what)
            assert other not in response.headers["Content-Security-Policy"], (name, what)


def test_nobody_may_frame_an_unknown_widget_or_other_pages(guest):
    for path in ("/w/nope", "/w/nope/messages", "/nowhere"):
        response = guest.get(path)
        assert response.status_code == 404
        assert csp_directive(response, "frame-ancestors") == "'none'"


def test_demo_mode_also_lets_its_own_host_page_frame_the_widget(tmp_path):
    from webwidget.app import create_app
    from webwidget.settings import Settings

    settings = Settings(
        _env_file=None,
        WIDGET_ALLOWED_ORIGINS=HOST_ORIGIN,
        SESSION_STORE_URL=f"sqlite:///{tmp_path / 's.sqlite3'}",
    )
    app = create_app(settings=settings, instance_path=str(tmp_path))
    client = https_client(app)
    assert csp_directive(client.get("/w/default"), "frame-ancestors") == f"'self' {HOST_ORIGIN}"
    assert csp_directive(client.get("/"), "frame-ancestors") == "'none'"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("*", "'*' is not allowed"),
        ("https://*.example.com", "'*' is not allowed"),
        ("host.example", "is not an origin like"),
        ("ftp://host.example", "is not an origin like"),
        ("https://host.example/path", "must be scheme://host[:port]"),
        ("https://user@host.example", "must be scheme://host[:port]"),
        ("https://host.example:99999", "has a bad port"),
    ],
)
def test_settings_refuse_wildcard_and_malformed_origins_at_start_up(value, says):
    from webwidget.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as caught:
        load_settings(
            _env_file=None,
            SECRET_KEY="x" * 40,
            CHATCAPTAIN_BASE_URL="https://api.example",
            CHATCAPTAIN_CHATBOT_ID="bot",
            CHATCAPTAIN_CHANNEL_ID="channel",
            CHATCAPTAIN_CHANNEL_TOKEN="token",
            WIDGET_ALLOWED_ORIGINS=f"https://ok.example,{value}",
        )
    message = str(caught.value)
    assert message.startswith("WIDGET_ALLOWED_ORIGINS: ")
    assert "WIDGET_ALLOWED_ORIGINS" in message and says in message


# --- 3. Our pages -----------------------------------------------------------------------


@dataclass
class Scripting:
    """Inline event handlers, javascript: values, and the scripts of a page."""

    handlers: list[str]
    inline_scripts: list[dict[str, str | None]]
    script_urls: list[str]


def scan(html: str) -> Scripting:
    elements = parse_html(html).elements
    handlers = []
    for e in elements:
        handlers += [f"<{e.tag} {name}=" for name in e.attrs if name.startswith("on")]
        handlers += [f"<{e.tag} {name}=javascript:" for name, value in e.attrs.items()
                     if value and re.match(r"\s*javascript:", value, re.I)]
    scripts = [e.attrs for e in elements if e.tag == "script"]
    return Scripting(
        handlers=handlers,
        inline_scripts=[attrs for attrs in scripts if not attrs.get("src")],
        script_urls=[attrs["src"] for attrs in scripts if attrs.get("src")],
    )


def test_no_template_has_inline_handlers_or_inline_script():
    templates = sorted((ROOT / "templates").rglob("*.html"))
    assert len(templates) > 20
    for path in templates:
        text = path.read_text()
        assert not re.search(r"\son[a-z]+\s*=", text, re.I), f"inline handler in {path}"
        for tag in re.findall(r"<script\b[^>]*>", text, re.I):
            assert "src=" in tag or "csp_nonce()" in tag, f"inline script in {path}: {tag}"
        assert "javascript:" not in text.lower(), path


def rendered_pages(guest, sandbox):
    """Pages and fragments in every state, as (name, response)."""
    yield "welcome", guest.get("/w/default")
    yield "welcome fragment", guest.get("/w/default", headers={"HX-Request": "true"})
    guest.start()
    guest.send("all")
    yield "conversation", guest.get("/w/default")
    yield "poll", guest.get("/w/default/messages?v=x", headers={"HX-Request": "true"})
    yield "send fragment", guest.send("hello", htmx=True)
    yield "too long", guest.send("x" * 5000)
    yield "404", guest.get("/w/nope")
    yield "403", guest.client.post("/w/default/send", data={"text": "x"})
    yield "405", guest.get("/w/default/send")
    yield "ended", guest.end(htmx=True)


def test_rendered_pages_have_no_inline_code_and_strict_headers(guest, sandbox):
    pages = list(rendered_pages(guest, sandbox))
    for name, response in pages:
        assert response.mimetype == "text/html", name
        found = scan(response.get_data(as_text=True))
        assert found.handlers == [], name
        assert found.inline_scripts == [], name
        assert all(url.startswith("/static/") for url in found.script_urls), name
        csp = response.headers["Content-Security-Policy"]
        assert csp_directive(response, "script-src") == "'self'", name
        assert csp_directive(response, "default-src") == "'none'", name
        assert "unsafe-eval" not in csp and "unsafe-inline" not in csp, name
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert response.headers["Referrer-Policy"] == "no-referrer", name
        assert response.headers["Cache-Control"] == "no-store", name


def test_a_nonce_is_fresh_per_response_and_only_then_in_the_csp(one_app):
    from flask import render_template_string

    @one_app.get("/_nonce")
    def nonce_page():
        return render_template_string('<script nonce="{{ csp_nonce() }}">1</script>')

    client = https_client(one_app)
    nonces = []
    for _ in range(2):
        response = client.get("/_nonce")
        nonce = re.search(r'nonce="([^"]+)"', response.get_data(as_text=True)).group(1)
        assert csp_directive(response, "script-src") == f"'self' 'nonce-{nonce}'"
        nonces.append(nonce)
    assert nonces[0] != nonces[1] and len(nonces[0]) >= 22
    assert csp_directive(client.get("/w/default"), "script-src") == "'self'"


def test_every_response_is_nosniff_and_static_files_stay_cacheable(guest):
    css = guest.get("/static/css/widget.css")
    assert css.status_code == 200
    assert css.headers["X-Content-Type-Options"] == "nosniff"
    assert css.headers["Referrer-Policy"] == "no-referrer"
    assert "no-store" not in css.headers.get("Cache-Control", "")
    css.close()


def test_responses_that_carry_session_state_are_no_store(guest):
    started = guest.start(htmx=False)
    assert "Set-Cookie" in started.headers
    assert started.headers["Cache-Control"] == "no-store"
    poll = guest.get("/w/default/messages?v=x", headers={"HX-Request": "true"})
    assert poll.headers["Cache-Control"] == "no-store"
    unchanged = guest.get(
        "/w/default/messages?v=" + re.search(r"v=(\w+)", poll.get_data(as_text=True)).group(1)
    )
    assert unchanged.status_code == 204
    assert unchanged.headers["Cache-Control"] == "no-store"
    ended = guest.end()
    assert "Set-Cookie" in ended.headers and ended.headers["Cache-Control"] == "no-store"


def test_hsts_only_over_https(one_app):
    assert "Strict-Transport-Security" in https_client(one_app).get("/w/default").headers
    plain = one_app.test_client()
    http = "http://localhost/"
    assert "Strict-Transport-Security" not in plain.get("/w/default", base_url=http).headers
    # An untrusted X-Forwarded-Proto is ignored...
    spoofed = plain.get("/w/default", base_url=http, headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in spoofed.headers


def test_hsts_behind_a_trusted_proxy(sandbox, tmp_path):
    app = make_app(sandbox, tmp_path, TRUSTED_PROXY_HOPS=1)
    # ...but the configured proxy's is believed.
    behind = app.test_client().get("/w/default", headers={"X-Forwarded-Proto": "https"})
    assert behind.headers["Strict-Transport-Security"] == "max-age=31536000"


# --- 4. Sessions, end to end ------------------------------------------------------------


class CountingLoads:
    """Counts the session store's loads (a spy on the real store)."""

    def __init__(self, store) -> None:
        self.calls = 0
        self._load = store.load
        store.load = self

    def __call__(self, sid):
        self.calls += 1
        return self._load(sid)


@pytest.mark.parametrize("via", ["cookie", "header"])
def test_a_handle_the_server_did_not_issue_is_never_adopted(app, visitor, via):
    real = handle_of(visitor.start())
    forged = sid_of(real) + "." + "A" * 43  # a real id with a made-up signature
    other_key = real.rsplit(".", 1)[0] + "." + real.rsplit(".", 1)[1][::-1]
    loads = CountingLoads(store_of(app))
    for handle in (forged, other_key):
        client = fresh_client(app, handle, via=via)
        page = client.get("/w/default")
        assert page.status_code == 200
        assert "ww-welcome" in page.get_data(as_text=True)
        assert "Set-Cookie" not in page.headers
    assert loads.calls == 0
    # Starting a chat with a forged handle yields a new handle, not the forged one.
    client = fresh_client(app, forged, via=via)
    issued = client.post("/w/default/start", headers={"Sec-Fetch-Site": "same-origin"})
    assert handle_of(issued) not in (forged, real)


STRANGE = {
    "10 KB": "A" * 10_240,
    "NUL bytes": "abc\x00def." + "A" * 43,
    "unicode": "ünïcødé-☃-" + "\u202e" * 20,
    "only a dot": ".",
    "quotes and semicolons": '"; Path=/; __Host-ww_session-default=x',
    "empty": "",
}


@pytest.mark.parametrize("value", STRANGE.values(), ids=list(STRANGE))
def test_strange_handles_never_cause_a_server_error(one_app, sandbox, value):
    client = https_client(one_app)
    loads = CountingLoads(store_of(one_app))
    cookie = f"__Host-ww_session-default={value}"
    for headers in (
        {"Cookie": cookie},
        {"Cookie": "; ".join([cookie] * 200)},
        {"X-Widget-Session": value},
        {"Cookie": cookie, "X-Widget-Session": value},
    ):
        try:
            response = client.get("/w/default", headers=headers)
        except ValueError:
            continue  # the test client itself cannot send it (e.g. NUL in a header)
        assert response.status_code == 200, headers
        post = client.post(
            "/w/default/send",
            data={"text": "hi"},
            headers={"Sec-Fetch-Site": "same-origin", **headers},
        )
        # No chat behind it: not sent, and the words come back to the visitor.
        assert post.status_code == 409
        assert ">hi</textarea>" in post.get_data(as_text=True)
    assert loads.calls == 0
    assert stats(sandbox)["send_message"] == 0


def test_many_cookies_at_once_never_cause_a_server_error(guest):
    cookies = "; ".join(f"c{i}=" + "v" * 100 for i in range(300))
    assert guest.get("/w/default", headers={"Cookie": cookies}).status_code == 200


def test_starting_a_conversation_issues_a_new_handle(app, visitor):
    first = handle_of(visitor.start())
    visitor.end()
    second = handle_of(visitor.start())
    assert second != first
    # The old handle reaches nothing; the new one reaches the new chat.
    old = fresh_client(app, first).get("/w/default").get_data(as_text=True)
    assert "ww-welcome" in old
    new = fresh_client(app, second, via="header").get("/w/default").get_data(as_text=True)
    assert 'role="log"' in new


def add_second_widget(app) -> None:
    widgets = app.extensions["webwidget.widgets"]
    widgets["second"] = dataclasses.replace(widgets["default"], id="second")


def shows(client, widget: str, text: str) -> bool:
    return text in client.get(f"/w/{widget}").get_data(as_text=True)


def test_each_widget_has_its_own_session_and_its_handles_open_nothing_else(app, visitor, sandbox):
    """Issue 15 item 4: `second`'s host page must never get a handle to `default`'s chat."""
    add_second_widget(app)
    first = handle_of(visitor.start())
    visitor.send("said to default only")
    second = handle_of(visitor.start("second"))
    assert second != first
    # One browser keeps both chats, each under its own cookie.
    assert visitor.client.get_cookie("__Host-ww_session-default").value == first
    assert visitor.client.get_cookie("__Host-ww_session-second").value == second
    assert shows(visitor.client, "default", "said to default only")
    assert 'role="log"' in visitor.get("/w/second").get_data(as_text=True)
    assert not shows(visitor.client, "second", "said to default only")
    # The handle `second`'s host page holds opens `second` and nothing else.
    holder = fresh_client(app, second, via="header")
    assert 'role="log"' in holder.get("/w/second").get_data(as_text=True)
    for via in ("header", "cookie"):  # the cookie: `default`'s name, `second`'s handle
        stranger = fresh_client(app, second, via=via)
        assert "ww-welcome" in stranger.get("/w/default").get_data(as_text=True)
    before = stats(sandbox)["send_message"]
    sent = fresh_client(app, second, via="header").post(
        "/w/default/send", data={"text": "x"}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert sent.status_code == 409
    assert stats(sandbox)["send_message"] == before
    # And the other way round.
    assert "ww-welcome" in fresh_client(app, first, via="header").get("/w/second").get_data(
        as_text=True
    )
    # Ending one widget's chat leaves the other's.
    visitor.end("second")
    assert shows(visitor.client, "default", "said to default only")


def test_a_cookie_planted_by_a_sibling_subdomain_is_ignored(app, sandbox):
    """Issue 15 item 6: only a `__Host-` cookie counts, which no other host can set."""
    attacker = Visitor(https_client(app))
    planted = handle_of(attacker.start())
    victim = Visitor(https_client(app))
    own = handle_of(victim.start())
    victim.client.delete_cookie("__Host-ww_session-default", domain="localhost")
    # What `Domain=.example.com` from a sibling would add: the old, unprefixed name.
    victim.client.set_cookie("ww_session", planted, domain="localhost")
    victim.send("for my own chat", headers={"X-Widget-Session": own})
    assert shows(fresh_client(app, own, via="header"), "default", "for my own chat")
    assert not shows(fresh_client(app, planted, via="header"), "default", "for my own chat")


def test_when_cookie_and_header_both_arrive_a_live_cookie_wins(app):
    """The documented precedence: the cookie, then the header if the cookie leads nowhere."""
    by_cookie, by_header = Visitor(https_client(app)), Visitor(https_client(app))
    cookie_handle = handle_of(by_cookie.start())
    by_cookie.send("cookie chat")
    header_handle = handle_of(by_header.start())
    by_header.send("header chat")
    both = fresh_client(app, cookie_handle)
    both.environ_base["HTTP_X_WIDGET_SESSION"] = header_handle
    page = both.get("/w/default").get_data(as_text=True)
    assert "cookie chat" in page and "header chat" not in page
    # A cookie that leads nowhere (ended chat) falls back to the header.
    by_cookie.end()
    page = both.get("/w/default").get_data(as_text=True)
    assert "header chat" in page


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_idle_and_absolute_timeouts_end_the_chat(sandbox, tmp_path, store, request, clock):
    store_url = request.getfixturevalue("redis_url") if store == "redis" else None
    if store_url:
        store_url = store_url.rsplit("/", 1)[0] + "/15"
    app = make_app(
        sandbox, tmp_path, store_url=store_url, clock=clock, SESSION_IDLE_TIMEOUT=120,
        SESSION_ABSOLUTE_TIMEOUT=600
    )
    visitor = Visitor(https_client(app))

    visitor.start()
    clock.advance(119)
    assert 'role="log"' in visitor.get("/w/default").get_data(as_text=True)
    clock.advance(121)  # idle for longer than 120 s
    assert "ww-welcome" in visitor.get("/w/default").get_data(as_text=True)

    handle = handle_of(visitor.start())
    for _ in range(5):  # active every 100 s: never idle, but past 600 s in the end
        clock.advance(100)
        assert 'role="log"' in visitor.get("/w/default").get_data(as_text=True)
    clock.advance(101)
    assert "ww-welcome" in visitor.get("/w/default").get_data(as_text=True)
    assert store_of(app).load(sid_of(handle)) is None


def test_end_chat_deletes_the_record_and_the_old_handle_is_dead(app, visitor, sandbox):
    handle = handle_of(visitor.start())
    assert store_of(app).load(sid_of(handle)) is not None
    ended = visitor.end()
    assert ended.status_code == 303
    assert store_of(app).load(sid_of(handle)) is None
    for via in ("cookie", "header"):
        replay = fresh_client(app, handle, via=via)
        assert "ww-welcome" in replay.get("/w/default").get_data(as_text=True)
        sent = replay.post(
            "/w/default/send", data={"text": "hi"}, headers={"Sec-Fetch-Site": "same-origin"}
        )
        assert sent.status_code == 409
        assert ">hi</textarea>" in sent.get_data(as_text=True)
    assert stats(sandbox)["send_message"] == 0


def test_a_corrupt_store_record_is_discarded(app, visitor, store_url):
    handle = handle_of(visitor.start())
    corrupt_session(store_of(app), sid_of(handle), store_url)
    page = visitor.get("/w/default")
    assert page.status_code == 200
    assert "ww-welcome" in page.get_data(as_text=True)
    assert store_of(app).load(sid_of(handle)) is None


def test_no_pickle_anywhere_in_the_package():
    banned = re.compile(r"\b(pickle|cPickle|marshal|shelve|dill|jsonpickle)\b")
    sources = sorted((ROOT / "webwidget").rglob("*.py"))
    assert len(sources) > 20
    offenders = [str(path) for path in sources if banned.search(path.read_text())]
    assert offenders == []


def test_session_cookie_attributes_suit_a_third_party_iframe(guest):
    started = guest.start()
    cookie = started.headers["Set-Cookie"]
    assert parse_cookie(cookie)["__Host-ww_session-default"] == handle_of(started)
    for attribute in ("Secure", "HttpOnly", "SameSite=None", "Partitioned", "Path=/"):
        assert attribute in cookie
    # What the __Host- prefix demands, or browsers drop the cookie.
    assert cookie.startswith("__Host-") and "Domain=" not in cookie
