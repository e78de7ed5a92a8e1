"""The bot's Markdown subset (webwidget/rendering/markdown.py): what it formats, and,
property-based, that hostile input gets no markup of its own and costs linear time."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest
from flask import Flask
from flask_babel import Babel
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup
from test_rendering import _STEERING, TRANSLATIONS_DIR, _cost_ratio

from webwidget.rendering.markdown import _blocks, markdown
from webwidget.rendering.text import safe_url

LINK = 'rel="noopener noreferrer" target="_blank"'


@pytest.fixture(autouse=True)
def babel_context():
    """'Show more' is translated: markdown needs an app context like linkify."""
    app = Flask(__name__)
    Babel(app, default_translation_directories=str(TRANSLATIONS_DIR))
    with app.test_request_context():
        yield


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**bold** and __bold__", "<strong>bold</strong> and <strong>bold</strong>"),
        ("*italic* and _italic_", "<em>italic</em> and <em>italic</em>"),
        ("`a *b* <c>`", "<code>a *b* &lt;c&gt;</code>"),
        ("[the docs](https://docs.example/a?b=1&c=2)",
         f'<a href="https://docs.example/a?b=1&amp;c=2" {LINK}>the docs</a>'),
        ("**see https://a.example/x**",
         f'<strong>see <a href="https://a.example/x" {LINK} dir="ltr">https://a.example/x</a>'
         "</strong>"),
        ("- one\n- **two**", "<ul><li>one</li><li><strong>two</strong></li></ul>"),
        ("Steps:\n1. open\n2. close\nDone.",
         "Steps:\n<ol><li>open</li><li>close</li></ol>\nDone."),
        ("3) three\n4) four", '<ol start="3"><li>three</li><li>four</li></ol>'),
        ("line\n\nnext", "line<br>\n<br>\nnext"),
        # What is not Markdown stays as written.
        ("snake_case_name", "snake_case_name"),
        ("2 * 3 * 4", "2 * 3 * 4"),
        ("2*3*4 and {{7*7}} ${7*7}", "2*3*4 and {{7*7}} ${7*7}"),
        ("****", "****"),
        ("**unclosed", "**unclosed"),
        ("* unclosed item*", "<ul><li>unclosed item*</li></ul>"),
        ("[x](javascript:alert(1))", "[x](javascript:alert(1))"),
        ("[x](javascript:alert)", "[x](javascript:alert)"),
        ("[x](/relative)", "[x](/relative)"),
        ("<b>not bold</b> & <script>", "&lt;b&gt;not bold&lt;/b&gt; &amp; &lt;script&gt;"),
    ],
)
def test_the_subset(text, expected):
    assert str(markdown(text)) == expected


def test_long_markdown_folds_as_linkify_does():
    out = markdown("**start** " + "word " * 400 + "*end*")
    assert isinstance(out, Markup)
    assert out.startswith("<strong>start</strong>")
    assert '<details class="ww-more"><summary>Show more</summary>' in out
    assert out.endswith("<em>end</em></details>")


# --- hostile input ---------------------------------------------------------------------------

ALLOWED = {
    "strong": set(), "em": set(), "code": set(), "ul": set(), "ol": {"start"}, "li": set(),
    "br": set(), "a": {"href", "rel", "target", "dir"},
}
VOID = {"br"}
MARKDOWN_PIECES = ["**", "*", "__", "_", "`", "[", "]", "(", ")", "](", "- ", "1. ", "\n",
                   "https://a.example/", "www.", "javascript:", "<", ">", "&", '"', "'", " ",
                   "x", "\u202e", "{{7*7}}"]
HOSTILE = st.one_of(
    st.text(),
    st.lists(st.sampled_from(MARKDOWN_PIECES + _STEERING), max_size=40).map("".join),
)


class Balanced(HTMLParser):
    """Parses the output, failing on a tag, attribute or nesting markdown never makes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        assert tag in ALLOWED, tag
        names = {name for name, _ in attrs}
        assert names <= ALLOWED[tag], (tag, attrs)
        values = dict(attrs)
        if tag == "a":
            assert safe_url(values["href"]) == values["href"]
            assert values["rel"] == "noopener noreferrer" and values["target"] == "_blank"
        if tag == "ol" and "start" in values:
            assert values["start"].isdigit()
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, (self.open, tag)
        self.open.pop()

    def handle_data(self, data):
        self.text.append(data)

    def handle_comment(self, data):
        raise AssertionError(f"comment {data!r}")

    def handle_decl(self, decl):
        raise AssertionError(f"declaration {decl!r}")


def is_subsequence(small: str, big: str) -> bool:
    chars = iter(big)
    return all(char in chars for char in small)


@settings(max_examples=300, deadline=None)
@given(HOSTILE)
def test_hostile_text_gets_no_markup_of_its_own(text):
    out = str(_blocks(text.replace("\r\n", "\n").replace("\r", "\n")))
    parser = Balanced()
    parser.feed(out)
    parser.close()
    assert parser.open == [], parser.open
    # Only markers go: the visible text is the input's characters, in order.
    visible = "".join(parser.text)
    assert is_subsequence(visible, text.replace("\r", "\n")), (visible, text)
    # Every "<" of the input is escaped: the only tags are the ones built here.
    assert len(re.findall(r"<(?!/?(?:strong|em|code|ul|ol|li|a|br)\b)", out)) == 0
    assert html.unescape(out).count("<script") == text.count("<script")


@settings(max_examples=20, deadline=None)
@given(st.lists(st.sampled_from(MARKDOWN_PIECES + _STEERING), min_size=1, max_size=6),
       st.text(max_size=30))
def test_markdown_cost_is_linear_in_the_length(motif, noise):
    # Any repeated pattern at 40 KB costs, per character, a small multiple of what linkify
    # costs on prose (CPU time of this process): a quadratic step would cost hundreds.
    unit = "".join(motif)
    text = noise + unit * (40_000 // len(unit) + 1)
    assert _cost_ratio(_blocks, text) < 25, unit


@pytest.mark.parametrize(
    "unit",
    ["*a", "**a", "_a ", "`a", "[a", "[a](", "[a](b", "*_", "**_*", "https://a.example/*",
     "- *", "1. [", "*" * 7 + "a", "(" * 3 + "https://a.example/" + ")" * 3 + "*"],
)
def test_markdown_is_linear_on_unclosed_delimiters(unit):
    # At 10 and 40 KB alike a small multiple of prose per character: a quadratic step
    # would grow with the length.
    for size in (10_000, 40_000):
        text = unit * (size // len(unit))
        assert _cost_ratio(_blocks, text, runs=3) < 25, (unit, size)
