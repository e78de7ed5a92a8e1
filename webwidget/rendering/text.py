"""Text that reaches the widget's HTML: URL safety, linkified text, WhatsApp
placeholders, file sizes and message times.

Every string is plain text (Jinja autoescape escapes it) except the Markup built by
``linkify``, which escapes every piece of upstream text itself (filled WhatsApp
placeholders included).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, tzinfo
from urllib.parse import urlsplit

from flask_babel import gettext
from markupsafe import Markup, escape

_SAFE_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
_WEB_SCHEMES = frozenset({"http", "https"})
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
# Browsers drop tab/CR/LF anywhere in a URL and C0 controls/space at its ends, so
# "java\tscript:" is javascript: to them; we normalise the same way before judging.
_URL_DROPPED = re.compile(r"[\t\n\r]")
_C0_OR_SPACE = "".join(chr(c) for c in range(0x21))
# Bidi controls and whitespace end a URL: an override inside link text could spoof it.
_BIDI = "\u200e\u200f\u202a-\u202e\u2066-\u2069"
_LINK_RE = re.compile(
    rf"(?:\b(?:https?://|mailto:)|\bwww\.)[^\s<>\"'`{_BIDI}\x00-\x1f\x7f]+",
    re.IGNORECASE,
)
_TRAILING_PUNCT = ".,;:!?'\")]}"
# Few digits: a placeholder number of thousands of digits is no placeholder, and int()
# refuses such strings (ValueError) after a cost that grows with their length.
_PLACEHOLDER_RE = re.compile(r"\{\{\s*(\d{1,4})\s*\}\}")
# A message shows its first FOLD_AT characters; up to RENDER_LIMIT more behind "Show more";
# the rest is not rendered. Both bound the work and the HTML one message costs.
FOLD_AT = 1_200
RENDER_LIMIT = 12_000
_FOLD_SLACK = 200  # how far back from FOLD_AT a space or line break may end the visible part
_ELLIPSIS = "\u2026"


def safe_url(url: object, *, schemes: Iterable[str] = _SAFE_SCHEMES) -> str | None:
    """Return the URL (normalised) if its scheme is http, https, mailto or tel, else None."""
    if not isinstance(url, str):
        return None
    cleaned = _URL_DROPPED.sub("", url).strip(_C0_OR_SPACE + "\x7f")
    match = _SCHEME_RE.match(cleaned)
    if not match:
        return None  # relative or scheme-less: its meaning depends on the page, so refuse
    scheme = match.group(1).lower()
    if scheme not in set(schemes):
        return None
    if scheme in _WEB_SCHEMES:
        try:
            if not urlsplit(cleaned).netloc:
                return None
        except ValueError:
            return None
    return cleaned


def web_url(url: object) -> str | None:
    """Like safe_url, but only http/https (for images, media and avatars)."""
    return safe_url(url, schemes=_WEB_SCHEMES)


def _link(url_text: str) -> str:
    """An escaped anchor for a URL found in text, or the escaped text if it is unsafe."""
    href = safe_url("https://" + url_text if url_text.lower().startswith("www.") else url_text)
    if href is None:
        return str(escape(url_text))
    return (
        f'<a href="{escape(href)}" rel="noopener noreferrer" target="_blank" dir="ltr">'
        f"{escape(url_text)}</a>"
    )


def _link_length(url: str) -> int:
    """How much of a URL match is the link: sentence punctuation after it is not..."""
    end = len(url.rstrip(_TRAILING_PUNCT))
    # ...except a ")" that closes a "(" inside the URL, as in Wikipedia links. Counted once
    # and then stepped, so a URL of n "(" and n ")" costs n, not n squared.
    unclosed = url.count("(", 0, end) - url.count(")", 0, end)
    while unclosed > 0 and end < len(url) and url[end] == ")":
        end += 1
        unclosed -= 1
    return end


def _linked(text: str) -> str:
    """Escaped text with its URLs as links and its newlines (already \\n only) as <br>."""
    out: list[str] = []
    pos = 0
    for match in _LINK_RE.finditer(text):
        url = match.group(0)
        stripped = url[: _link_length(url)]
        out.append(str(escape(text[pos : match.start()])))
        if stripped.lower() in ("www.", "mailto:") or stripped.endswith("://"):
            out.append(str(escape(stripped)))
        else:
            out.append(_link(stripped))
        pos = match.start() + len(stripped)
    out.append(str(escape(text[pos:])))
    return "".join(out).replace("\n", "<br>\n")


def _fold(text: str) -> tuple[str, str]:
    """Split text at FOLD_AT characters, at a space or line break near there if there is one."""
    if len(text) <= FOLD_AT:
        return text, ""
    near = FOLD_AT - _FOLD_SLACK
    cut = max(text.rfind(" ", near, FOLD_AT), text.rfind("\n", near, FOLD_AT))
    cut = cut + 1 if cut >= 0 else FOLD_AT
    return text[:cut], text[cut:]


def linkify(text: object) -> Markup:
    """Escape text, link http(s)/mailto/www. URLs, turn newlines into <br>, fold long text.

    At most RENDER_LIMIT characters are rendered (an ellipsis says there was more); past
    FOLD_AT they sit behind a "show more" disclosure, so a long message stays short.
    """
    return folded(text, _linked)


def folded(text: object, render: Callable[[str], str]) -> Markup:
    """`text` clipped at RENDER_LIMIT, its newlines made one kind, and rendered by `render`
    with everything past FOLD_AT behind a "show more" disclosure."""
    if text is None:
        return Markup("")
    text = str(text)
    clipped = len(text) > RENDER_LIMIT
    text = text[:RENDER_LIMIT].replace("\r\n", "\n").replace("\r", "\n")
    head, rest = _fold(text)
    html = render(head)
    if rest:
        label = escape(gettext("Show more"))
        html += (
            f'<details class="ww-more"><summary>{label}</summary>'
            f"{render(rest)}{_ELLIPSIS if clipped else ''}</details>"
        )
    return Markup(html)


def fill_placeholders(text: object, params: Iterable[object] | None) -> str:
    """Replace 1-based ``{{n}}`` with params[n-1] in one pass; missing ones stay visible."""
    values = [str(p) if p is not None else "" for p in (params or [])]

    def repl(match: re.Match[str]) -> str:
        index = int(match.group(1)) - 1
        return values[index] if 0 <= index < len(values) else match.group(0)

    # One pass means a parameter that itself contains "{{2}}" is never expanded again;
    # the result is plain text and must still go through escaping (see linkify).
    return _PLACEHOLDER_RE.sub(repl, "" if text is None else str(text))


def filesize(n: object) -> str:
    """A human-readable size in decimal units, e.g. 1200000 -> '1.2 MB'; '' if unknown."""
    if not isinstance(n, str | int | float):
        return ""
    try:
        size = float(n)
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(size) or size < 0:
        return ""
    if size < 1000:
        return f"{int(size)} B"
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if size < 1000 or unit == "TB":
            return f"{size:.1f} {unit}"
    return ""  # unreachable; keeps type checkers calm


# --- dates -------------------------------------------------------------------------------

# Short time/date patterns per language; enough for a chat timestamp without Babel.
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DATE_FORMATS = {
    "en": "{mon} {d}",
    "de": "{dd}.{mm}.",
    "fr": "{dd}/{mm}",
    "es": "{dd}/{mm}",
    "it": "{dd}/{mm}",
    "nl": "{d}-{m}",
    "ar": "{dd}/{mm}",
}


def parse_timestamp(value: object) -> datetime | None:
    """Parse an ISO-8601 string (or epoch seconds/milliseconds) to an aware datetime."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
            seconds = float(value)
            if abs(seconds) > 1e11:  # milliseconds, as JavaScript clients send them
                seconds /= 1000
            parsed = datetime.fromtimestamp(seconds, tz=UTC)
        elif isinstance(value, str):
            text = value.strip()
            if text[-1:] in "zZ":
                text = text[:-1] + "+00:00"
            parsed = datetime.fromisoformat(text)
        else:
            return None
    except (ValueError, OverflowError, OSError, IndexError):
        return None
    # A naive timestamp from upstream is taken as UTC, the API's own zone.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _language(locale: str | None) -> str:
    lang = re.split(r"[-_]", (locale or "en").strip().lower(), maxsplit=1)[0]
    return lang if lang in _DATE_FORMATS else "en"


def format_timestamp(
    when: datetime | None, *, locale: str = "en", now: datetime | None = None, tz: tzinfo = UTC
) -> str:
    """A short display string: the time today, the date and time on other days."""
    if when is None:
        return ""
    lang = _language(locale)
    local = when.astimezone(tz)
    if lang == "en":
        clock = f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
    else:
        clock = f"{local.hour:02d}:{local.minute:02d}"
    today = (now or datetime.now(UTC)).astimezone(tz).date()
    if local.date() == today:
        return clock
    date = _DATE_FORMATS[lang].format(
        mon=_MONTHS_EN[local.month - 1],
        d=local.day,
        dd=f"{local.day:02d}",
        m=local.month,
        mm=f"{local.month:02d}",
    )
    if local.year != today.year:
        sep = {"en": ", ", "de": ""}.get(lang, "/" if lang != "nl" else "-")
        date = f"{date}{sep}{local.year}"
    return f"{date}, {clock}" if lang == "en" else f"{date} {clock}"
