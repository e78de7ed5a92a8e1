"""Hostile content, property-based: whatever upstream or a visitor writes stays text.

Messages with hostile strings in every field are rendered through the real app's
templates; the HTML may hold only elements and attributes the message partials define,
links only with http, https, mailto or tel, and no template evaluation of the text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import advance, https_client, make_app, parse_html, reset, widget_settings
from conftest import message_payload as message
from flask import render_template
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "widget"
SAFE_LINK = re.compile(r"^(https?:|mailto:|tel:)", re.I)

ATOMS = [
    "<script>alert(1)</script>",
    '" onerror="alert(1)',
    "' onmouseover='alert(1)",
    "javascript:alert(1)",
    " JaVaScRiPt:alert(1)",
    "data:text/html;base64,PHNjcmlwdD4=",
    'hx-get="/w/default/end" hx-trigger="load"',
    "{{7*7}}",
    "{% raw %}",
    "${7*7}",
    "\u202e\u2066bidi\u2069\u202c",
    "</article></div><img src=x onerror=alert(1)>",
    "<!-- -->",
    "&lt;&amp;&#x3C;",
    "\x00\x1f\x7f",
    "<svg/onload=alert(1)>",
    "<a href='javascript:x'>",
]
URL_ATOMS = [
    "javascript:alert(1)",
    "data:image/svg+xml,<svg onload=alert(1)>",
    "vbscript:x",
    "//evil.example/x",
    '"><script>alert(1)</script>',
    'https://ok.example/" onerror="alert(1)',
    "\tjava\nscript:alert(1)",
    "https://ok.example/a b",
    "mailto:x@example.com?body=<script>",
]
# No digits in the free text: "49" in the output can then only come from evaluating {{7*7}}.
FREE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Nd"), max_codepoint=0x2FFF), max_size=12
)
HOSTILE = st.lists(st.one_of(st.sampled_from(ATOMS), FREE), min_size=1, max_size=4).map("".join)
URL = st.one_of(st.sampled_from(URL_ATOMS), HOSTILE)


def template_allowlist() -> dict[str, set[str]]:
    """Tag -> attribute names, read from the message partials themselves."""
    allowed: dict[str, set[str]] = {}
    sources = [TEMPLATES / "_message.html", *TEMPLATES.glob("_content_*.html")]
    for path in sources:
        text = re.sub(r"\{#.*?#\}", " ", path.read_text(), flags=re.S)
        text = re.sub(r"\{%.*?%\}", " ", text, flags=re.S)
        text = re.sub(r"\{\{.*?\}\}", "X", text, flags=re.S)
        for tag, body in re.findall(r"<([a-z][a-z0-9]*)\b([^>]*)>", text):
            names = re.findall(r"(?:^|\s)([a-z][a-z0-9-]*)(?=\s*=|\s|/|$)", body)
            allowed.setdefault(tag, set()).update(names)
    # The one piece of markup built in Python: rendering.linkify's links and line breaks.
    allowed.setdefault("a", set()).update({"href", "rel", "target", "dir"})
    allowed.setdefault("br", set())
    # And rendering.markdown's, for the bot's text: emphasis, code, lists (an ordered one
    # may start at its first number).
    for tag in ("strong", "em", "code", "ul", "li"):
        allowed.setdefault(tag, set())
    allowed.setdefault("ol", set()).add("start")
    return allowed


ALLOWED = template_allowlist()


def assert_nothing_introduced(html: str) -> None:
    """Only template-defined elements and attributes; only safe link schemes."""
    parser = parse_html(html)
    assert parser.comments == []
    for tag, attrs in parser.tags:
        assert tag in ALLOWED, f"<{tag}> is not in any message partial"
        assert set(attrs) <= ALLOWED[tag], f"<{tag}> got {set(attrs) - ALLOWED[tag]}"
        for name in ("href", "src", "action"):
            value = attrs.get(name)
            if value is not None and name != "action":
                assert SAFE_LINK.match(value), f"{name}={value!r}"
        assert not any(name.startswith("on") for name in attrs)
    # The text, not attributes: random message ids may hold any digits.
    assert "49" not in "".join(parser.text), "upstream text was evaluated as a template"


@st.composite
def hostile_messages(draw):
    """A message list with a hostile string (or URL) in every rendered field."""

    def s():
        return draw(HOSTILE)

    def url():
        return draw(URL)

    file_ = {
        "name": s(),
        "url": url(),
        "type": draw(st.sampled_from(["image", "video", "audio", "document", s()])),
        "mimeType": s(),
        "caption": s(),
        "transcript": s(),
        "size": 1234,
        "attachmentRef": s(),
    }
    content = {
        "text": s(),
        "file": file_,
        "buttons": {
            "buttons": [
                {"label": s(), "type": "url", "value": url()},
                {"label": s(), "type": "postback", "value": s(), "payload": s()},
            ]
        },
        "selectedButton": {"label": s(), "value": s(), "reference": s()},
        "template": {"header": s(), "body": s(), "footer": s()},
        "location": {"latitude": 52.5, "longitude": 13.4, "name": s(), "address": s()},
        "voiceHangup": {"reason": s(), "headers": {s(): s()}},
        "voiceTransfer": {"target": s(), "reason": s(), "headers": {}},
        "agentHandover": {"reason": s(), "agentId": s()},
        "email": {
            "subject": s(),
            "body": s(),
            "from": s(),
            "to": [s()],
            "cc": [s()],
            "bcc": [s()],
            "attachmentIds": [],
            "references": [],
        },
        "textToSpeech": {"text": s(), "speech": url()},
        "metaWhatsappTemplate": {
            "templateName": s(),
            "language": s(),
            "headerText": s() + " {{1}}",
            "header": {"parameters": [s()]},
            "bodyText": s() + " {{1}} {{2}}",
            "bodyParameters": [s(), s()],
            "footerText": s(),
            "buttons": [{"label": s(), "type": "url", "url": url()}],
        },
        "operator": {"operatorId": s()},
    }
    common = {"status": s(), "streamGroupId": s(), "tags": [s()]}
    persona = {"name": s(), "image": url()}
    return [
        message(s(), content, persona=persona, **common),
        message(s(), {"text": s()}, outgoing=False, error=s(), **common),
        message(s(), {"text": s(), "file": file_}, isSensitive=True, **common),
        message(s(), {}, **common),
    ]


@pytest.fixture(scope="module")
def widget_app(tmp_path_factory):
    """The real app (templates, filters, globals); its upstream is never called here."""
    from webwidget.app import create_app

    path = tmp_path_factory.mktemp("hostile")
    settings_ = widget_settings("http://127.0.0.1:9", f"sqlite:///{path / 's.sqlite3'}")
    return create_app(settings=settings_, instance_path=str(path))


def render_messages(app, payload, *, can_send):
    from webwidget.chatcaptain.models import MessageDto
    from webwidget.rendering import build_message_views

    dtos = [MessageDto.model_validate(m) for m in payload]
    with app.test_request_context("/w/default"):
        views = build_message_views(dtos, can_send=can_send)
        return render_template(
            "widget/_messages.html", messages=views, widget="default", can_send=can_send
        )


def test_the_allowlist_is_read_from_the_partials():
    assert {"article", "a", "img", "form", "button"} <= set(ALLOWED)
    assert "data-message-id" in ALLOWED["article"] and "href" in ALLOWED["a"]
    assert not any(name.startswith("on") for names in ALLOWED.values() for name in names)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(payload=hostile_messages(), can_send=st.booleans())
def test_hostile_messages_render_as_text(widget_app, payload, can_send):
    assert_nothing_introduced(render_messages(widget_app, payload, can_send=can_send))


def test_100_kb_in_every_field_renders_as_text(widget_app):
    big = "A" * 100_000 + "<script>alert(1)</script>{{7*7}}\u202e"
    payload = [
        message(big, {"text": big, "template": {"header": big, "body": big, "footer": big}}),
        message("v", {"text": big}, outgoing=False, error=big, persona={"name": big, "image": big}),
    ]
    html = render_messages(widget_app, payload, can_send=True)
    assert_nothing_introduced(html)
    assert len(html) > 400_000  # ids, header, footer, error and name are shown whole...
    # ...message texts up to RENDER_LIMIT characters, then an ellipsis (two texts, one body)
    assert html.count('<details class="ww-more">') == html.count("\u2026</details>") == 3


def bot_command(text: str) -> bool:
    """Whether the sandbox bot answers `text` with a command's replies instead of echoing it
    (hypothesis once drew "AUDIO")."""
    from webwidget.sandbox.bot import COMMANDS

    return text.strip().lower() in {*COMMANDS, "all", "demo"}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=HOSTILE.filter(lambda t: t.strip() and len(t) < 2000 and not bot_command(t)))
def test_a_visitors_hostile_text_comes_back_through_the_sandbox_as_text(text):
    """End to end: the visitor's text goes upstream and the bot's echo of it is rendered."""
    # Module-scoped servers are created once; hypothesis runs this body per example.
    app, sandbox_url = _end_to_end()
    reset(sandbox_url)
    client = https_client(app)
    same = {"Sec-Fetch-Site": "same-origin"}
    assert client.post("/w/default/start", headers=same).status_code == 303
    sent = client.post("/w/default/send", data={"text": text}, headers=same)
    assert sent.status_code == 303
    # The bot types for a moment before its echo becomes visible.
    advance(sandbox_url, 30)
    page = client.get("/w/default")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    log = html[html.index('role="log"') : html.index('id="ww-poller"')]
    log = log[log.index(">") + 1 :].rsplit("</div>", 1)[0]
    assert "You said:" in log  # the echo of the visitor's text is there
    # Clock times (12:49) are ours, not evaluated text.
    assert_nothing_introduced(re.sub(r"<time[^>]*>[^<]*</time>", "", log))
    scripts = re.findall(r"<script[^>]*>", html)
    assert all('src="/static/' in tag for tag in scripts)


_SERVERS: dict[str, object] = {}


def _end_to_end():
    """One sandbox and one widget app for the end-to-end property (created lazily)."""
    if "app" not in _SERVERS:
        import tempfile

        from webwidget.sandbox import create_sandbox_app
        from webwidget.sandbox.server import BackgroundServer

        server = BackgroundServer(create_sandbox_app()).start()
        path = Path(tempfile.mkdtemp(prefix="hostile-e2e-"))
        _SERVERS["server"] = server
        _SERVERS["app"] = make_app(server, path, RATE_LIMIT_ENABLED=False)
    return _SERVERS["app"], _SERVERS["server"].url


@pytest.fixture(scope="module", autouse=True)
def _stop_servers():
    yield
    server = _SERVERS.pop("server", None)
    if server is not None:
        server.stop()
    _SERVERS.clear()
