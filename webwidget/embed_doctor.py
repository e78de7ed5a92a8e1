"""`webwidget check URL`: the embed doctor. Fetches a page of the site owner's and says,
one line each with the fix, whether the widget can work there: the script tag and its
widget id, whether the page's origin may embed it, the page's Content-Security-Policy,
mixed content, and a second widget on the page."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import requests

TIMEOUT = 10  # seconds for each request the doctor makes


@dataclass(frozen=True)
class Finding:
    """One line of the report: fine or not, and what it says (with the fix when not)."""

    ok: bool
    text: str

    def __str__(self) -> str:
        return f"{'ok ' if self.ok else 'FIX'} {self.text}"


@dataclass(frozen=True)
class Tag:
    """A widget script tag on the page: the loader's absolute URL and its data-widget."""

    src: str
    widget: str

    @property
    def origin(self) -> str:
        """The widget server's origin (where the loader comes from)."""
        parts = urlsplit(self.src)
        return f"{parts.scheme}://{parts.netloc}"


class PageReader(HTMLParser):
    """The widget script tags and any CSP <meta> of a page."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.tags: list[Tag] = []
        self.meta_csp: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "script" and urlsplit(values.get("src", "")).path.endswith("/embed.js"):
            src = urljoin(self.base, values["src"])
            self.tags.append(Tag(src, values.get("data-widget") or "default"))
        elif tag == "meta" and values.get("http-equiv", "").lower() == "content-security-policy":
            self.meta_csp.append(values.get("content", ""))


def origin_of(url: str) -> str:
    """scheme://host[:port] of `url`."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def parse_csp(policy: str) -> dict[str, list[str]]:
    """A policy's directives and their sources (names lower-cased)."""
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            directives.setdefault(words[0].lower(), words[1:])
    return directives


# Which directive governs what, and what it falls back to when absent.
FALLBACKS = {
    "script-src": ("script-src-elem", "script-src", "default-src"),
    "frame-src": ("frame-src", "child-src", "default-src"),
    "connect-src": ("connect-src", "default-src"),
}


def source_allows(source: str, origin: str, page_origin: str) -> bool:
    """Whether one CSP source expression lets `origin` in (the common forms)."""
    source = source.strip().lower()
    scheme, host = origin.split("://", 1)
    if source == "*":
        return scheme in ("http", "https")
    if source == "'self'":
        return origin == page_origin
    if source.endswith(":") and "/" not in source:
        return source == f"{scheme}:" or (source == "http:" and scheme == "https")
    if "://" in source:
        source_scheme, source = source.split("://", 1)
        if source_scheme != scheme and not (source_scheme == "http" and scheme == "https"):
            return False
    source = source.split("/", 1)[0]
    if source.startswith("*."):
        return host.split(":")[0].endswith(source[1:].split(":")[0])
    if ":" not in source:
        # No port in the source: the scheme's default port only.
        return host == source
    return host == source or (source.endswith(":*") and host.split(":")[0] == source[:-2])


def csp_findings(policies: list[str], widget_origin: str, page_origin: str) -> list[Finding]:
    """What each of the page's policies says about loading the widget from `widget_origin`."""
    if not policies:
        return [Finding(True, "the page sets no Content-Security-Policy")]
    findings = []
    needs = {
        "script-src": "the loader script",
        "frame-src": "the chat's iframe",
        "connect-src": "the loader's theme request",
    }
    for directive, what in needs.items():
        blocked = []
        for policy in policies:
            directives = parse_csp(policy)
            governing = next((d for d in FALLBACKS[directive] if d in directives), None)
            if governing is None:
                continue
            sources = directives[governing]
            if not any(source_allows(s, widget_origin, page_origin) for s in sources):
                blocked.append(governing)
        if blocked:
            findings.append(Finding(
                False,
                f"the page's CSP ({blocked[0]}) blocks {what}: add {widget_origin} to "
                f"{directive}",
            ))
        else:
            findings.append(Finding(True, f"the page's CSP allows {what} ({directive})"))
    return findings


def widget_findings(tag: Tag, page_origin: str, get: Callable) -> list[Finding]:
    """Whether the widget exists and the page's origin may embed it (as the loader asks)."""
    url = f"{tag.origin}/embed/{tag.widget}.json"
    try:
        answer = get(url, headers={"Origin": page_origin}, timeout=TIMEOUT)
        body = answer.json() if answer.ok else {}
    except (requests.RequestException, ValueError) as error:
        return [Finding(False, f"the widget server at {tag.origin} did not answer "
                               f"({type(error).__name__}): is it running at that address?")]
    if body.get("error"):
        return [Finding(False, body["error"])]
    if not answer.ok:
        return [Finding(False, f"{url} answered {answer.status_code}: is {tag.origin} the "
                               "widget server?")]
    return [
        Finding(True, f'the widget "{tag.widget}" exists on {tag.origin}'),
        Finding(True, f"{page_origin} may embed it"),
    ]


def diagnose(url: str, get: Callable = requests.get) -> list[Finding]:
    """Every finding for the page at `url`."""
    try:
        page = get(url, timeout=TIMEOUT)
    except requests.RequestException as error:
        return [Finding(False, f"could not fetch {url} ({type(error).__name__}): check the URL")]
    if not page.ok:
        return [Finding(False, f"{url} answered {page.status_code}: check the URL")]
    page_origin = origin_of(page.url or url)
    reader = PageReader(page.url or url)
    reader.feed(page.text)
    if not reader.tags:
        return [Finding(False, "no widget script tag on the page: add "
                               '<script src="https://YOUR-WIDGET-HOST/embed.js" '
                               'data-widget="default" async></script> (docs/embedding.md)')]
    tag = reader.tags[0]
    findings = [Finding(True, f'script tag found: {tag.src}, data-widget="{tag.widget}"')]
    if len(reader.tags) > 1:
        others = ", ".join(f'"{t.widget}"' for t in reader.tags[1:])
        findings.append(Finding(False, f"a second widget script tag ({others}) is ignored: "
                                       "one widget per page, remove the others"))
    if page_origin.startswith("https:") and tag.src.startswith("http:"):
        findings.append(Finding(False, f"mixed content: the page is https but loads {tag.src}; "
                                       "serve the widget over https and use an https src"))
    findings += widget_findings(tag, page_origin, get)
    # Several CSP headers arrive joined by commas, which also separate policies in one.
    header = page.headers.get("Content-Security-Policy", "")
    policies = [p for p in header.split(",") + reader.meta_csp if p.strip()]
    findings += csp_findings(policies, tag.origin, page_origin)
    return findings


def run(args: argparse.Namespace) -> int:
    """Print the report; exit status 1 when anything needs fixing."""
    findings = diagnose(args.url)
    for finding in findings:
        print(finding)
    return 0 if all(f.ok for f in findings) else 1


def add_command(commands) -> None:
    """Register `check URL` on the `webwidget` command's subparsers."""
    command = commands.add_parser(
        "check", help="check a page of your site that embeds the widget (the embed doctor)"
    )
    command.add_argument("url", help="a page of your site with the widget's script tag")
    command.set_defaults(run=run)

