"""Tests for webwidget.rendering (messages.py, text.py) and the message partials
(templates/widget/_message*.html)."""

from __future__ import annotations

import copy
import html
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import Html, parse_html
from conftest import message_payload as msg
from flask import Blueprint, Flask, render_template
from flask_babel import Babel, force_locale
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from webwidget.chatcaptain.models import ContentDto, MessageDto
from webwidget.rendering import (
    CONTENT_TEMPLATES,
    KINDS,
    UNKNOWN_TEMPLATE,
    build_message_views,
    register_template_helpers,
)
from webwidget.rendering.text import (
    FOLD_AT,
    RENDER_LIMIT,
    _linked,
    filesize,
    fill_placeholders,
    format_timestamp,
    linkify,
    parse_timestamp,
    safe_url,
)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "webwidget" / "translations"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SEND_ACTION = "/w/default/send"

# --- HTML inspection -----------------------------------------------------------------------

# Every tag and attribute the partials may emit; anything else came from upstream data.
ALLOWED = {
    # id: dom_id(), a delta target; data-delay-ms (digits only) and data-stream: widget.js
    "article": {"class", "id", "data-message-id", "data-delay-ms", "data-stream"},
    "header": {"class"},
    "footer": {"class"},
    "div": {"class", "role", "dir"},
    "p": {"class", "dir"},
    "span": {"class", "aria-hidden", "dir"},
    "bdi": {"class"},
    "strong": set(),
    # The bot's Markdown (rendering.markdown): emphasis, code and lists.
    "em": set(),
    "code": set(),
    "ul": set(),
    "ol": {"start"},
    "li": set(),
    "small": set(),
    "br": set(),
    "dl": {"class"},
    "dt": set(),
    "dd": set(),
    # download: the file's name (escaped), which the browser uses to save it.
    "a": {"class", "href", "rel", "target", "dir", "download"},
    "img": {"class", "src", "alt", "loading", "referrerpolicy", "width", "height"},
    "figure": {"class"},
    "figcaption": {"dir"},
    "audio": {"controls", "preload", "src"},
    "video": {"controls", "preload", "src"},
    "details": {"class"},
    "summary": set(),
    "time": {"datetime"},
    "form": {"class", "method", "action"},
    "input": {"type", "name", "value"},
    "button": {"type", "class", "disabled"},
}
FIXED_VALUES = {
    "rel": {"noopener noreferrer"},
    "target": {"_blank"},
    "dir": {"auto", "ltr"},
    "aria-hidden": {"true"},
    "role": {"group"},
    "method": {"post"},
    "action": {SEND_ACTION},
    "loading": {"lazy"},
    "referrerpolicy": {"no-referrer"},
    "preload": {"none"},
    "name": {"button_label", "button_value"},
    "type": {"hidden", "submit", "button"},
}


def parse(fragment: str) -> Html:
    """Parse an HTML fragment into tags and text."""
    return parse_html(fragment)


def assert_allowlisted(fragment: str) -> Html:
    """Every tag, attribute and fixed-value attribute comes from the partials; URLs are safe."""
    doc = parse(fragment)
    assert not doc.comments
    for tag, attrs in doc.tags:
        assert tag in ALLOWED, f"unexpected <{tag}>"
        assert set(attrs) <= ALLOWED[tag], f"unexpected attributes on <{tag}>: {attrs}"
        for name, value in attrs.items():
            if name in FIXED_VALUES:
                assert value in FIXED_VALUES[name], (tag, name, value)
        for token in (attrs.get("class") or "").split():
            assert token.startswith("ww-"), token
        assert (attrs.get("data-delay-ms") or "0").isdigit()
        if tag == "a":
            assert attrs["rel"] == "noopener noreferrer"
            assert safe_url(attrs["href"]) == attrs["href"], attrs["href"]
        for name in ("src",):
            if name in attrs:
                assert re.match(r"^https?://", attrs[name]), attrs[name]
    return doc


def structure(doc: Html) -> list[tuple[str, tuple[str, ...]]]:
    """The element skeleton (tags and attribute names), ignoring line breaks."""
    return [(tag, tuple(sorted(attrs))) for tag, attrs in doc.tags if tag != "br"]


# --- fixtures and builders -------------------------------------------------------------


@pytest.fixture
def app():
    app = Flask(__name__, template_folder=str(TEMPLATES))
    bp = Blueprint("widget", __name__)

    @bp.post("/w/<widget>/send")
    def send(widget):
        return ""

    app.register_blueprint(bp)
    register_template_helpers(app)
    Babel(app, default_translation_directories=str(TRANSLATIONS_DIR))  # linkify's "Show more"
    app.jinja_env.globals["_"] = lambda s, **kw: s % kw if kw else s
    return app


@pytest.fixture
def render(app):
    def render(messages, *, can_send=False, locale="en"):
        dtos = [MessageDto.model_validate(m) for m in messages]
        views = build_message_views(dtos, locale=locale, can_send=can_send, now=NOW)
        with app.test_request_context():
            return render_template(
                "widget/_messages.html", messages=views, widget="default", can_send=can_send
            )

    return render


def file_(url="https://files.example/a.pdf", **kw):
    data = {
        "name": "report.pdf",
        "url": url,
        "type": "document",
        "mimeType": "application/pdf",
        "size": 1_234_567,
        "attachmentRef": "att-1",
    }
    data.update(kw)
    return data


EVERY_KIND = {
    "text": "Hello, see https://example.com/docs.",
    "file": file_(),
    "buttons": {
        "buttons": [
            {"label": "Yes", "type": "postback", "value": "yes"},
            {"label": "Docs", "type": "url", "value": "https://example.com/"},
        ]
    },
    "selectedButton": {"label": "Yes", "value": "yes", "reference": "m0"},
    "template": {"header": "Head", "body": "Body", "footer": "Foot"},
    "location": {"latitude": 52.52, "longitude": 13.405},
    "voiceHangup": {"reason": "caller hung up", "headers": {"X-Sip": "1"}},
    "voiceTransfer": {"target": "sip:internal@pbx", "headers": {}},
    "agentHandover": {"reason": "angry", "agentId": "agent-7"},
    "email": {
        "subject": "Your order",
        "body": "Thanks!\nhttps://shop.example/o/1",
        "from": "shop@example.com",
        "to": ["you@example.com"],
        "cc": ["cc@example.com"],
        "bcc": ["secret-bcc@example.com"],
        "attachmentIds": [],
        "references": [],
    },
    "textToSpeech": {"text": "Spoken words"},
    "metaWhatsappTemplate": {
        "templateName": "order",
        "language": "en",
        "bodyText": "Hi {{1}}, order {{2}} ships.",
        "bodyParameters": ["Ann", "42"],
        "footerText": "Reply STOP",
        "buttons": [
            {"label": "Track", "type": "url", "url": "https://track.example/42"},
            {"label": "OK", "type": "quick_reply", "value": "ok"},
        ],
    },
    "operator": {"operatorId": "op-secret-123"},
}
KIND_MARKERS = {
    "text": 'class="ww-text"',
    "file": 'class="ww-file ww-file--file"',
    "buttons": 'class="ww-buttons"',
    "selectedButton": 'class="ww-selected"',
    "template": 'class="ww-template"',
    "location": 'class="ww-location"',
    "voiceHangup": "The call has ended.",
    "voiceTransfer": "The call is being transferred.",
    "agentHandover": "You are being connected to an agent.",
    "email": 'class="ww-email"',
    "textToSpeech": 'class="ww-tts"',
    "metaWhatsappTemplate": 'class="ww-wa"',
    "operator": "An agent joined the conversation.",
}


# --- the mapping ---------------------------------------------------------------------------


def test_content_templates_cover_exactly_the_content_kinds():
    kinds = set(ContentDto.model_fields) - {"delay", "leadAiId"}
    assert set(CONTENT_TEMPLATES) == set(KINDS) == kinds
    assert set(KIND_MARKERS) == kinds == set(EVERY_KIND)
    for kind, name in CONTENT_TEMPLATES.items():
        assert (TEMPLATES / name).is_file(), kind
    assert (TEMPLATES / UNKNOWN_TEMPLATE).is_file()


def test_register_template_helpers(app):
    env = app.jinja_env
    assert {"safe_url", "linkify", "filesize"} <= set(env.filters)
    assert env.globals["content_template"]("file") == CONTENT_TEMPLATES["file"]
    assert env.globals["content_template"]("nope") == UNKNOWN_TEMPLATE


# --- every kind, order, sides --------------------------------------------------------------


def test_every_kind_renders_its_partial_in_order(render):
    messages = [msg(f"m{i}", {kind: value}) for i, (kind, value) in enumerate(EVERY_KIND.items())]
    messages.append(msg("v1", {"text": "mine"}, outgoing=False, status="read"))
    out = render(messages)
    doc = assert_allowlisted(out)
    articles = [a for t, a in doc.tags if t == "article"]
    assert [a["data-message-id"] for a in articles] == [m["id"] for m in messages]
    assert all("ww-msg--bot" in a["class"] for a in articles[:-1])
    assert "ww-msg--visitor" in articles[-1]["class"]
    for i, kind in enumerate(EVERY_KIND):
        chunk = out.split(f'data-message-id="m{i}"')[1].split("<article")[0]
        assert KIND_MARKERS[kind] in chunk, kind
    # Internal ids and private recipients never reach the page.
    for secret in ("op-secret-123", "agent-7", "sip:internal@pbx", "secret-bcc@example.com"):
        assert secret not in out


def test_several_kinds_in_one_message_render_in_fixed_order(render):
    content = {"buttons": EVERY_KIND["buttons"], "text": "Pick one", "file": file_()}
    out = render([msg("m1", content)])
    assert out.index("ww-file") < out.index("ww-text") < out.index("ww-buttons")
    assert out.count("<article") == 1


@pytest.mark.parametrize(
    "content", [{}, {"delay": 5, "leadAiId": "lead-1"}, {"somethingNew": {"x": 1}}, {"text": ""}]
)
def test_no_known_content_gets_the_placeholder(render, content):
    out = render([msg("m1", content)])
    assert "This message can&#39;t be shown here." in out
    assert_allowlisted(out)


def test_system_notices_are_centered_messages(render):
    out = render([msg("m1", {"agentHandover": {"reason": "x"}, "operator": {"operatorId": "o"}})])
    assert "ww-msg--system" in out
    assert "ww-msg__who" not in out


# --- message chrome ------------------------------------------------------------------------


def test_persona_avatar_time_and_status(render):
    messages = [
        msg("b1", {"text": "hi"}, persona={"name": "Ava", "image": "https://cdn.example/a.png"}),
        msg("b2", {"text": "hi"}, persona={"name": "Eve", "image": "javascript:alert(1)"}),
        msg("v1", {"text": "yo"}, outgoing=False, status="delivered"),
        msg("v2", {"text": "yo"}, outgoing=False, status="READ", created="2024-04-30T08:05:00Z"),
    ]
    out = render(messages)
    doc = assert_allowlisted(out)
    imgs = [a for t, a in doc.tags if t == "img"]
    assert imgs == [
        {
            "class": "ww-avatar",
            "src": "https://cdn.example/a.png",
            "alt": "",
            "width": "28",
            "height": "28",
            "loading": "lazy",
            "referrerpolicy": "no-referrer",
        }
    ]
    assert "Ava" in out and "Eve" in out
    times = [a["datetime"] for t, a in doc.tags if t == "time"]
    assert times[0] == "2024-05-01T10:00:00+00:00"
    # UTC without script (widget.js shows the visitor's own clock), and said so.
    assert ">10:00 AM UTC</time>" in out and ">Apr 30, 8:05 AM UTC</time>" in out
    assert out.count('class="ww-status ') == 2  # visitor messages only
    assert "ww-status--delivered" in out and "ww-status--read" in out


def test_bot_message_status_is_not_shown(render):
    out = render([msg("b1", {"text": "hi"}, status="read")])
    assert "ww-status" not in out


def test_failed_message_shows_not_delivered_with_escaped_error(render):
    out = render([msg("v1", {"text": "x"}, outgoing=False, error="<b>quota</b> exceeded")])
    assert "ww-msg--failed" in out
    assert "Not delivered" in out
    assert "&lt;b&gt;quota&lt;/b&gt; exceeded" in out
    assert "ww-status" not in out  # a failed message does not claim "sent"


def test_sensitive_content_is_behind_details(render):
    out = render([msg("m1", {"text": "card 4111"}, isSensitive=True)])
    doc = parse(out)
    assert [t for t, _ in doc.tags][:4] == ["article", "details", "summary", "div"]
    assert "Show sensitive message" in out
    assert out.index("<details") < out.index("card 4111") < out.index("</details>")


def test_stream_groups_are_joined(render):
    messages = [
        msg("s1", {"text": "Hel"}, streamGroupId="g", persona={"name": "Ava", "image": ""}),
        msg("s2", {"text": "lo"}, streamGroupId="g", persona={"name": "Ava", "image": ""}),
        msg("s3", {"text": "!"}, streamGroupId="g", persona={"name": "Ava", "image": ""}),
        msg("s4", {"text": "new"}, streamGroupId="h", persona={"name": "Ava", "image": ""}),
    ]
    views = build_message_views([MessageDto.model_validate(m) for m in messages], now=NOW)
    flags = [(v.group_start, v.group_continues, v.group_end) for v in views]
    assert flags == [(True, False, False), (False, True, False), (False, True, True)] + [
        (True, False, True)
    ]
    out = render(messages)
    # The name once per group (s4, a new group of the same run, says it to screen readers
    # only); the time once, at the end of the run.
    assert out.count('class="ww-msg__who"') == 1
    assert out.count('class="ww-msg__who ww-visually-hidden"') == 1
    assert out.count("<time") == 1
    classes = [a["class"] for t, a in parse(out).tags if t == "article"]
    assert "ww-msg--joined" in classes[0] and "ww-msg--cont" in classes[1]
    assert "ww-msg--cont" in classes[2] and "ww-msg--joined" not in classes[2]


def test_one_senders_consecutive_messages_show_who_first_and_the_time_last(render):
    ava = {"name": "Ava", "image": "https://cdn.example/a.png"}
    messages = [
        msg("b1", {"text": "one"}, persona=ava, created="2024-05-01T10:00:00Z"),
        msg("b2", {"text": "two"}, persona=ava, created="2024-05-01T10:01:00Z"),
        msg("b3", {"text": "three"}, persona=ava, created="2024-05-01T10:02:00Z"),
        # Another persona, the visitor, an event and a long pause each start a new run.
        msg(
            "e1", {"text": "eve"}, persona={"name": "Eve", "image": ""},
            created="2024-05-01T10:02:00Z",
        ),
        msg("v1", {"text": "a"}, outgoing=False, created="2024-05-01T10:03:00Z"),
        msg("v2", {"text": "b"}, outgoing=False, created="2024-05-01T10:03:30Z"),
        msg("s1", {"agentHandover": {"reason": "x"}}, created="2024-05-01T10:04:00Z"),
        msg("v3", {"text": "c"}, outgoing=False, created="2024-05-01T10:05:00Z"),
        msg("v4", {"text": "d"}, outgoing=False, created="2024-05-01T10:20:00Z"),
    ]
    views = build_message_views([MessageDto.model_validate(m) for m in messages], now=NOW)
    runs = [(v.id, v.run_start, v.run_end) for v in views]
    assert runs == [
        ("b1", True, False), ("b2", False, False), ("b3", False, True), ("e1", True, True),
        ("v1", True, False), ("v2", False, True), ("s1", True, True), ("v3", True, True),
        ("v4", True, True),
    ]
    out = render(messages)
    doc = assert_allowlisted(out)
    assert [a["src"] for t, a in doc.tags if t == "img"] == ["https://cdn.example/a.png"]
    assert out.count('class="ww-msg__who"') == 2  # Ava, Eve
    assert out.count("<time") == 6  # b3, e1, v2, s1, v3, v4
    assert out.count('class="ww-status ') == 4  # each of the visitor's messages keeps its own


def test_a_message_joining_a_run_changes_the_previous_ones_state(render):
    """A poll's delta replaces the message that loses its time when another joins its run."""
    from webwidget.listing import message_states

    ava = {"name": "Ava", "image": ""}
    first = msg("b1", {"text": "one"}, persona=ava, created="2024-05-01T10:00:00Z")
    second = msg("b2", {"text": "two"}, persona=ava, created="2024-05-01T10:01:00Z")
    before = message_states([MessageDto.model_validate(first)])
    after = message_states([MessageDto.model_validate(m) for m in (first, second)])
    assert before[0][0] == after[0][0] and before[0][1] != after[0][1]


# --- content kinds in detail -----------------------------------------------------------------


def test_files_by_kind(render):
    messages = [
        msg(
            "img",
            {
                "file": file_(
                    "https://f.example/cat.png",
                    type="image",
                    mimeType="image/png",
                    name="cat.png",
                    caption="A cat",
                )
            },
        ),
        msg(
            "aud",
            {
                "file": file_(
                    "https://f.example/a.mp3",
                    type="audio",
                    mimeType="audio/mpeg",
                    transcript="hello there",
                )
            },
        ),
        msg("vid", {"file": file_("https://f.example/v.mp4", type="video", mimeType="video/mp4")}),
        msg("doc", {"file": file_()}),
        msg("bad", {"file": file_("javascript:alert(1)", name="evil.pdf")}),
        msg(
            "dat",
            {
                "file": file_(
                    "data:image/png;base64,AAAA", type="image", mimeType="image/png", name="d.png"
                )
            },
        ),
    ]
    out = render(messages)
    doc = assert_allowlisted(out)
    img = next(a for t, a in doc.tags if t == "img")
    assert img["src"] == "https://f.example/cat.png" and img["alt"] == "A cat"
    img_chunk = out.split('data-message-id="img"')[1].split("<article")[0]
    assert '<figcaption dir="auto"><bdi>A cat</bdi></figcaption>' in img_chunk
    assert any(t == "audio" and a["src"] == "https://f.example/a.mp3" for t, a in doc.tags)
    assert any(t == "video" and "controls" in a for t, a in doc.tags)
    assert "Transcript" in out and "hello there" in out
    links = [a["href"] for t, a in doc.tags if t == "a" and a["class"] == "ww-file__link"]
    assert links == ["https://files.example/a.pdf"]
    # Every file with a safe URL can be downloaded; a picture opens full size.
    downloads = [a["href"] for t, a in doc.tags if t == "a" and a["class"] == "ww-file__download"]
    assert downloads == [
        "https://f.example/cat.png",
        "https://f.example/a.mp3",
        "https://f.example/v.mp4",
        "https://files.example/a.pdf",
    ]
    full = [a["href"] for t, a in doc.tags if t == "a" and a["class"] == "ww-file__full"]
    assert full == ["https://f.example/cat.png"]
    assert "1.2 MB" in out
    bad = out.split('data-message-id="bad"')[1].split("<article")[0]
    assert "evil.pdf" in bad and "<a " not in bad
    dat = out.split('data-message-id="dat"')[1]
    assert "<img" not in dat and "d.png" in dat


def test_buttons_are_forms_only_when_sending_is_possible(render):
    content = {
        "buttons": {
            "buttons": [
                {"label": "Yes", "type": "postback", "value": "yes"},
                {"label": "Site", "type": "url", "value": "https://example.com/"},
                {"label": "Auto", "type": "postback", "value": "https://auto.example/"},
                {"label": "Evil", "type": "url", "value": "javascript:alert(1)"},
            ]
        }
    }
    live = render([msg("m1", content)], can_send=True)
    doc = assert_allowlisted(live)
    forms = [a for t, a in doc.tags if t == "form"]
    assert forms == [{"class": "ww-choice", "method": "post", "action": SEND_ACTION}]
    inputs = {a["name"]: a["value"] for t, a in doc.tags if t == "input"}
    assert inputs == {"button_label": "Yes", "button_value": "yes"}
    hrefs = [a["href"] for t, a in doc.tags if t == "a"]
    assert hrefs == ["https://example.com/", "https://auto.example/"]
    # No dead controls: a link we refuse is left out, not shown disabled.
    assert not [a for t, a in doc.tags if t == "button" and "disabled" in a]
    assert "Evil" not in live

    inert = render([msg("m1", content)], can_send=False)
    doc = assert_allowlisted(inert)
    assert not [t for t, _ in doc.tags if t in ("form", "input", "button")]
    # Read-only: the choices are not offered at all; the links still work.
    assert "Yes" not in inert and "Evil" not in inert
    assert [a["href"] for t, a in doc.tags if t == "a"] == hrefs
    assert "javascript" not in inert


def test_selected_button_template_location_email_tts(render):
    out = render(
        [
            msg(
                "v",
                {"selectedButton": {"label": "Yes", "value": "y", "reference": "r"}},
                outgoing=False,
            ),
            msg("t", {"template": {"body": "Body only"}}),
            msg("l", {"location": {"latitude": 52.52, "longitude": 13.405}}),
            msg("x", {"location": {"latitude": 200, "longitude": 13.405}}),
            msg("e", {"email": EVERY_KIND["email"]}),
            msg("s", {"textToSpeech": {"text": "Say this"}}),
        ]
    )
    doc = assert_allowlisted(out)
    assert "You chose:" in out and "<bdi>Yes</bdi>" in out
    assert "Body only" in out and "ww-template__header" not in out
    osm = "https://www.openstreetmap.org/?mlat=52.52000&mlon=13.40500#map=16/52.52000/13.40500"
    assert [a["href"] for t, a in doc.tags if t == "a" and "openstreetmap" in a["href"]] == [osm]
    assert "52.52000, 13.40500" in out
    assert "unavailable" in out.split('data-message-id="x"')[1]
    assert "shop@example.com" in out and "you@example.com" in out and "cc@example.com" in out
    assert "Your order" in out and "Thanks!<br>" in out
    assert any(a.get("href") == "https://shop.example/o/1" for t, a in doc.tags)
    assert "Say this" in out and "Spoken message:" in out
    assert "<audio" not in out  # no speech reference, no player
    spoken = render(
        [msg("s", {"textToSpeech": {"text": "Hi", "speech": "https://f.example/s.wav"}})]
    )
    assert any(
        t == "audio" and a["src"] == "https://f.example/s.wav" for t, a in parse(spoken).tags
    )
    ref = render([msg("s", {"textToSpeech": {"text": "Hi", "speech": "tts-ref-123"}})])
    assert "<audio" not in ref and "tts-ref-123" not in ref
    assert not [t for t, _ in doc.tags if t in ("iframe", "script")]


def test_whatsapp_placeholders_are_filled_and_escaped(render):
    template = {
        "templateName": "t",
        "language": "en",
        "headerText": "Order {{1}}",
        "header": {
            "parameters": ["<b>#7</b>"],
            "file": {
                "name": "banner.png",
                "url": "https://f.example/banner.png",
                "type": "image",
                "mimeType": "image/png",
                "size": 10,
                "attachmentRef": "r",
            },
        },
        "bodyText": "Hi {{1}}, code {{2}}, missing {{3}}, twice {{1}}",
        "bodyParameters": ['<script>alert(1)</script>"', "{{3}} {{1}}"],
        "footerText": "<i>foot</i>",
        "buttons": [
            {"label": "Go", "type": "url", "url": "https://go.example/"},
            {"label": "Bad", "type": "url", "url": "vbscript:msgbox"},
            {"label": "Ok", "type": "quick_reply", "value": "ok"},
        ],
    }
    out = render([msg("w", {"metaWhatsappTemplate": template})], can_send=True)
    doc = assert_allowlisted(out)
    assert "Order &lt;b&gt;#7&lt;/b&gt;" in out
    assert (
        "Hi &lt;script&gt;alert(1)&lt;/script&gt;&#34;, code {{3}} {{1}}, missing {{3}}, twice "
        "&lt;script&gt;" in out
    )
    assert "&lt;i&gt;foot&lt;/i&gt;" in out
    assert any(t == "img" and a["src"] == "https://f.example/banner.png" for t, a in doc.tags)
    buttons = [a["href"] for t, a in doc.tags if t == "a" and "ww-button" in a["class"]]
    assert buttons == ["https://go.example/"]
    assert {a["value"] for t, a in doc.tags if t == "input"} == {"Ok", "ok"}
    assert "vbscript" not in out


def test_fill_placeholders():
    filled = fill_placeholders("{{1}} and {{ 2 }} and {{3}}", ["a", "{{1}}"])
    assert filled == "a and {{1}} and {{3}}"
    assert fill_placeholders("{{0}} {{x}}", ["a"]) == "{{0}} {{x}}"
    assert fill_placeholders(None, None) == ""


# --- hostile input ---------------------------------------------------------------------------

HOSTILE = [
    '"><script>alert(1)</script>',
    "' onerror='alert(1)",
    '" onmouseover="alert(1)" x="',
    "{{7*7}} {% if 1 %}yes{% endif %} ${7*7} #{7*7}",
    "\u202eexe.txt\u202c \u2066isolated",
    "<img src=x onerror=alert(1)>",
    'hx-get="/steal" hx-trigger="load" hx-swap="outerHTML"',
    '</bdi></p></div></article><a href="javascript:alert(1)">x</a>',
    "&lt;b&gt; &amp; &#34; &#x3C;",
    "javascript:alert(1)",
    "<!-- c --> <![CDATA[x]]> <?php ?>",
    "<svg/onload=alert(1)><style>*{}</style>",
    "\x00\x01\x7f nul",
]


def every_text_field(s: str) -> list[dict]:
    """Messages with `s` in every upstream string that gets rendered (URLs stay safe)."""
    content = copy.deepcopy(EVERY_KIND)
    content["text"] = s
    content["file"] = file_(name=s, caption=s, transcript=s, type=s, mimeType=s)
    content["buttons"] = {"buttons": [{"label": s, "type": s, "value": s, "payload": s}]}
    content["selectedButton"] = {"label": s, "value": s, "reference": s, "type": s}
    content["template"] = {"header": s, "body": s, "footer": s}
    content["voiceHangup"] = {"reason": s, "headers": {s: s}}
    content["voiceTransfer"] = {"target": s, "reason": s, "headers": {}}
    content["agentHandover"] = {"reason": s, "agentId": s, "groupId": s}
    content["email"].update(subject=s, body=s, to=[s, s], cc=[s])
    content["email"]["from"] = s
    content["textToSpeech"] = {"text": s, "speech": s}
    content["metaWhatsappTemplate"] = {
        "templateName": s,
        "language": s,
        "headerText": s + " {{1}}",
        "header": {"parameters": [s]},
        "bodyText": s + " {{1}} {{2}}",
        "bodyParameters": [s],
        "footerText": s,
        "buttons": [{"label": s, "type": s, "value": s}],
    }
    content["operator"] = {"operatorId": s}
    common = {"status": s, "created": s, "streamGroupId": s, "sender": s, "type": s, "tags": [s]}
    return [
        msg(s, content, persona={"name": s, "image": "https://cdn.example/p.png"}, **common),
        msg(s + "v", {"text": s}, outgoing=False, error=s, **common),
        msg(s + "s", {"text": s, "file": file_(name=s)}, isSensitive=True, **common),
    ]


@pytest.mark.parametrize("can_send", [False, True])
@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_strings_add_no_element_or_attribute(render, hostile, can_send):
    benign = assert_allowlisted(render(every_text_field("plain"), can_send=can_send))
    out = render(every_text_field(hostile), can_send=can_send)
    doc = assert_allowlisted(out)
    assert structure(doc) == structure(benign)
    assert "49" not in out  # no template evaluation of upstream text
    text = "".join(doc.text)
    assert hostile in text  # shown verbatim, as text
    # The id round-trips as an attribute, escaped.
    ids = [a["data-message-id"] for t, a in doc.tags if t == "article"]
    assert ids == [hostile, hostile + "v", hostile + "s"]


def test_bidi_text_is_isolated(render):
    out = render([msg("m", {"text": "\u202eevil"}, persona={"name": "\u202eAva", "image": ""})])
    assert '<div class="ww-text" dir="auto">\u202eevil</div>' in out
    assert '<bdi class="ww-msg__name">\u202eAva</bdi>' in out


# --- helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/",
        "https://example.com/a?b=1&c=2",
        "HTTPS://EXAMPLE.COM",
        "mailto:someone@example.com",
        "tel:+4930123456",
        "  https://example.com/  ",
    ],
)
def test_safe_url_keeps_safe_schemes(url):
    assert safe_url(url) == url.strip()


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        "\x01javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "/relative/path",
        "//evil.example/x",
        "example.com",
        "https:///nohost",
        "http:",
        "",
        None,
        42,
    ],
)
def test_safe_url_rejects_everything_else(url):
    assert safe_url(url) is None


def test_linkify():
    out = linkify('Go to www.example.com, or https://a.example/x?y=1&z="2". Mail mailto:a@b.c\nbye')
    assert isinstance(out, Markup)
    assert (
        '<a href="https://www.example.com" rel="noopener noreferrer" target="_blank" dir="ltr">'
        "www.example.com</a>," in out
    )
    assert 'href="https://a.example/x?y=1&amp;z=" rel' in out
    assert "&#34;2&#34;." in out
    assert 'href="mailto:a@b.c"' in out
    assert "<br>\nbye" in out
    assert linkify("(see https://en.wikipedia.org/wiki/A_(b)).").count("A_(b)</a>).") == 1
    assert linkify(None) == ""
    assert linkify("<b>") == "&lt;b&gt;"
    assert "<a" not in linkify("javascript:alert(1) www. https://")


@given(st.text())
def test_linkify_only_adds_links_and_breaks(text):
    out = linkify(text)
    doc = assert_allowlisted(f"<p>{out}</p>")
    assert {t for t, _ in doc.tags} <= {"p", "a", "br"}
    plain = html.unescape(re.sub(r"<[^>]*>", "", str(out).replace("<br>\n", "\n")))
    assert plain == text.replace("\r\n", "\n").replace("\r", "\n")


# --- linkify's cost and size --------------------------------------------------------------

# Pieces that steer the URL scanner: scheme starts, brackets, trailing punctuation,
# separators and characters that need escaping.
_STEERING = ["https://a.example/", "http://", "www.", "mailto:", "(", ")", ".", ",", "!",
             ")", "a", " ", "\n", "\r\n", "<", "&", '"', "\u202e", "://", "w"]


_PROSE = "Hello there, see https://example.com/a_(b) for more. "


def _cost_ratio(function, text: str, runs: int = 5) -> float:
    """What `function` costs per character of `text`, in units of what `_linked` costs per
    character of ordinary prose, measured alternately in this process's CPU time: other
    processes' load neither adds to it nor shifts one side of the ratio only."""
    prose = (_PROSE * (len(text) // len(_PROSE) + 1))[: max(len(text), 10_000)]
    best_text = best_prose = float("inf")
    for _ in range(runs):
        for argument, which in ((prose, "prose"), (text, "text")):
            started = time.process_time()
            (_linked if which == "prose" else function)(argument)
            spent = time.process_time() - started
            if which == "prose":
                best_prose = min(best_prose, spent / len(prose))
            else:
                best_text = min(best_text, spent / len(text))
    return best_text / max(best_prose, 1e-12)


def test_linkify_is_linear_on_nested_brackets():
    # The red team's input: 0.06 s at 10 KB, 0.86 s at 40 KB, 22 s at 160 KB before (a
    # cost per character 30 to 100 times that of prose already at 10 to 40 KB).
    for size in (10_000, 40_000, 160_000):
        n = (size - len("https://a.example/")) // 2
        text = "https://a.example/" + "(" * n + ")" * n
        assert _cost_ratio(_linked, text) < 25, size
        # Whatever the input, the filter itself renders at most RENDER_LIMIT characters:
        # per character of the input it costs less and less.
        assert _cost_ratio(linkify, text) < 25 * RENDER_LIMIT / size + 1, size


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(_STEERING), min_size=1, max_size=6),
    st.text(max_size=30),
)
def test_linkify_cost_is_linear_in_the_length(motif, noise):
    # Any repeated pattern, at 40 KB, costs a small multiple of plain prose per character
    # (at most 4 measured): a quadratic step would cost a hundred times more at this size.
    unit = "".join(motif)
    text = noise + unit * (40_000 // len(unit) + 1)
    assert _cost_ratio(_linked, text) < 25, unit


def test_long_text_shows_its_start_and_the_rest_behind_show_more():
    words = " ".join(f"w{i}" for i in range(FOLD_AT))  # longer than FOLD_AT
    out = str(linkify(words))
    head, _, rest = out.partition('<details class="ww-more"><summary>Show more</summary>')
    assert rest.endswith("</details>") and "\u2026" not in rest
    assert len(head) <= FOLD_AT and head.endswith(" ")  # ends between two words
    assert head + rest.removesuffix("</details>") == words
    assert str(linkify(words[:FOLD_AT])) == words[:FOLD_AT]  # short text is not folded


def test_text_past_the_render_limit_is_not_rendered():
    huge = "x" * RENDER_LIMIT + "END" + "y" * 100_000
    out = str(linkify(huge))
    assert "END" not in out and "yy" not in out
    assert out.endswith("x\u2026</details>")
    assert out.count("x") == RENDER_LIMIT


def test_show_more_speaks_the_page_language(app):
    with app.test_request_context(), force_locale("de"):
        assert "<summary>Mehr anzeigen</summary>" in linkify("x " * FOLD_AT)


def test_long_messages_fold_in_every_text_partial(render):
    long = "word " * 1000
    messages = [
        msg("t", {"text": long}),
        msg("e", {"email": {**EVERY_KIND["email"], "body": long}}),
        msg("tpl", {"template": {"header": "H", "body": long, "footer": "F"}}),
        msg("s", {"textToSpeech": {"text": long}}),
        msg("wa", {"metaWhatsappTemplate": {**EVERY_KIND["metaWhatsappTemplate"],
                                             "bodyText": long}}),
    ]
    doc = assert_allowlisted(render(messages))
    folds = [a for t, a in doc.tags if t == "details" and a.get("class") == "ww-more"]
    assert len(folds) == len(messages)
    # Each fold sits in a <div>, where a <details> is allowed (a <p> would be cut by it).
    assert "<p" not in re.sub(r"<p[^>]*>(?:(?!</p>).)*</p>", "", render(messages), flags=re.S)


def test_placeholder_numbers_of_thousands_of_digits_stay_text():
    # int() refuses more than 4300 digits with ValueError: the page must still render.
    huge = "{{" + "9" * 5000 + "}}"
    assert fill_placeholders(huge + " {{1}}", ["a"]) == huge + " a"


def test_filesize():
    assert filesize(0) == "0 B"
    assert filesize(999) == "999 B"
    assert filesize(1_200) == "1.2 kB"
    assert filesize(1_234_567) == "1.2 MB"
    assert filesize(5e12) == "5.0 TB"
    assert filesize(None) == "" and filesize(-1) == "" and filesize("x") == ""
    assert filesize(float("nan")) == ""


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T10:00:00.123+02:00", datetime(2024, 5, 1, 8, 0, 0, 123000, tzinfo=UTC)),
        ("2024-05-01 10:00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("1714557600", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("1714557600000", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
        ("1e400", None),
        (None, None),
    ],
)
def test_parse_timestamp_is_lenient(value, expected):
    parsed = parse_timestamp(value)
    assert parsed == expected
    assert parsed is None or parsed.tzinfo is not None


def test_format_timestamp_by_locale():
    when = datetime(2024, 5, 1, 15, 5, tzinfo=UTC)
    assert format_timestamp(when, locale="en", now=NOW) == "3:05 PM"
    assert format_timestamp(when, locale="de-DE", now=NOW) == "15:05"
    assert format_timestamp(when, locale="FR", now=NOW + timedelta(days=3)) == "01/05 15:05"
    assert format_timestamp(when, locale="de", now=NOW + timedelta(days=400)) == "01.05.2024 15:05"
    assert format_timestamp(when, locale="xx", now=NOW + timedelta(days=1)) == "May 1, 3:05 PM"
    assert format_timestamp(when, now=NOW, tz=timezone(timedelta(hours=2))) == "5:05 PM"
    assert format_timestamp(None) == ""


def test_a_file_link_says_download_only_where_the_browser_saves_it(render):
    """`download` works on the page's own origin only; elsewhere the link opens a tab."""
    out = render([
        msg("here", {"file": file_("http://localhost/files/a.pdf", name="a.pdf")}),
        msg("away", {"file": file_("https://files.example/b.pdf", name="b.pdf")}),
    ])
    here = out.split('data-message-id="here"')[1].split("<article")[0]
    away = out.split('data-message-id="away"')[1]
    assert ">Download<" in here and "new tab" not in here
    assert ">Open<" in away and "(opens in a new tab)" in away and "Download" not in away
