"""A safe subset of Markdown for the bot's text: **bold**, *italic*, `code`, lists and
[links](url), with bare URLs linked as `linkify` links them.

Bots write Markdown; shown raw, its asterisks get in the way. Only these pieces are
recognised; every other character is escaped text, every link goes through `safe_url`
(a refused one stays text), and the only markup produced is strong, em, code, ul, ol,
li, a and br. One left-to-right pass per line, delimiters matched with a stack (each
pushed and popped at most once), so the cost is linear in the length whatever the input.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

from .text import _LINK_RE, _link, _link_length, folded, safe_url

# Lists: "- item", "* item", "+ item"; "1. item", "1) item" (up to three spaces before).
_BULLET = re.compile(r"[ ]{0,3}[-*+][ \t]+(?=\S)")
_NUMBER = re.compile(r"[ ]{0,3}(\d{1,9})[.)][ \t]+(?=\S)")
# Inline tokens, leftmost first. Link text stops at a bracket or line end and the URL at a
# parenthesis or space, so no candidate rescans another's characters.
_INLINE = re.compile(
    r"(?P<code>`[^`\n]+`)"
    r"|(?P<link>\[(?P<label>[^\[\]\n]{1,500})\]\((?P<href>[^()\s<>]{1,2048})\))"
    rf"|(?P<url>{_LINK_RE.pattern})"
    r"|(?P<delim>\*\*|__|\*|_)",
    re.IGNORECASE,
)
_TAGS = {"**": "strong", "__": "strong", "*": "em", "_": "em"}


def _can_open(before: str, after: str) -> bool:
    # Not inside a word or number: "snake_case", "2*3*4" and "{{7*7}}" stay as written.
    return bool(after) and not after.isspace() and not before.isalnum()


def _can_close(before: str, after: str) -> bool:
    return bool(before) and not before.isspace() and not after.isalnum()


def _url(text: str) -> tuple[str, int]:
    """The link markup for a bare URL at the start of `text`, and how much of it it took."""
    # Emphasis around a URL ("**https://x.example**") is not part of it.
    end = _link_length(text.rstrip("*_"))
    stripped = text[:end].rstrip("*_")
    if stripped.lower() in ("www.", "mailto:") or stripped.endswith("://"):
        return str(escape(stripped)), len(stripped)
    return _link(stripped), len(stripped)


def inline(line: str) -> str:
    """One line's escaped text with its emphasis, code, links and bare URLs as markup."""
    out: list[str] = []
    openers: list[tuple[str, int]] = []  # (delimiter, its index in out), innermost last
    latest: dict[str, list[int]] = {d: [] for d in _TAGS}  # positions in `openers`, per kind
    pos = 0
    while True:
        match = _INLINE.search(line, pos)
        if match is None:
            break
        out.append(str(escape(line[pos : match.start()])))
        kind = match.lastgroup
        pos = match.end()
        if kind == "code":
            out.append(f"<code>{escape(match.group(0)[1:-1])}</code>")
        elif kind == "link":
            href = safe_url(match.group("href"))
            label = escape(match.group("label"))
            if href is None:
                out.append(str(escape(match.group(0))))
            else:
                out.append(
                    f'<a href="{escape(href)}" rel="noopener noreferrer" target="_blank">'
                    f"{label}</a>"
                )
        elif kind == "url":
            markup, used = _url(match.group(0))
            out.append(markup)
            pos = match.start() + used
        else:
            delim = match.group(0)
            before = line[match.start() - 1] if match.start() else ""
            after = line[pos] if pos < len(line) else ""
            stack = latest[delim]
            at = openers[stack[-1]][1] if stack else -1
            empty = at == len(out) - 2 and not out[-1]  # "****" is no empty emphasis
            if stack and not empty and _can_close(before, after):
                # Close the innermost opener of this kind; openers above it stay text.
                index = stack[-1]
                while len(openers) > index:
                    latest[openers.pop()[0]].pop()
                tag = _TAGS[delim]
                out[at] = f"<{tag}>"
                out.append(f"</{tag}>")
            elif _can_open(before, after):
                latest[delim].append(len(openers))
                openers.append((delim, len(out)))
                out.append(delim)
            else:
                out.append(delim)
    out.append(str(escape(line[pos:])))
    return "".join(out)


def _blocks(text: str) -> str:
    """Lines as paragraphs' lines (joined by <br>) and runs of list items as lists."""
    out: list[str] = []
    lines: list[str] = []  # the current run of ordinary lines
    items: list[str] = []
    list_tag = ""
    start = 1

    def flush_lines() -> None:
        while lines and not lines[-1].strip():
            lines.pop()  # no blank line before a list or at the end
        if lines:
            out.append("<br>\n".join(inline(line) for line in lines))
        lines.clear()

    def flush_list() -> None:
        if items:
            first = f' start="{start}"' if list_tag == "ol" and start != 1 else ""
            out.append(f"<{list_tag}{first}>" + "".join(f"<li>{i}</li>" for i in items)
                       + f"</{list_tag}>")
        items.clear()

    for line in text.split("\n"):
        bullet = _BULLET.match(line)
        number = None if bullet else _NUMBER.match(line)
        marker = bullet or number
        if marker is None:
            if items and not line.strip():
                continue  # a blank line after a list ends it, and shows as nothing
            flush_list()
            if lines or line.strip():
                lines.append(line)
            continue
        tag = "ul" if bullet else "ol"
        if tag != list_tag or not items:
            flush_list()
            flush_lines()
            list_tag = tag
            start = int(number.group(1)) if number else 1
        items.append(inline(line[marker.end() :]))
    flush_list()
    flush_lines()
    return "\n".join(out)


def markdown(text: object) -> Markup:
    """The bot's text with the safe Markdown subset as markup, folded and clipped as
    `linkify` folds and clips (see text.py)."""
    return folded(text, _blocks)
