"""Print the gzip sizes of the loader and of everything the first open of the widget loads.

Usage: .venv/bin/python scripts/embed_sizes.py
The first open is the loader, the iframe page's HTML (welcome view) and every stylesheet
and script that page links (htmx included), as served (our JS and CSS minified). Sizes are
gzip -6, as a proxy would serve them. The first column is the same files as written in the
repository (before minification), for comparison; the budgets apply to what is served.
"""

from __future__ import annotations

import gzip
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The promise of the lightest widget to load. Our scripts and stylesheets are served
# minified (webwidget/web/assets.py), which is what keeps every feature inside these.
LOADER_BUDGET = 3 * 1024
FIRST_OPEN_BUDGET = 30 * 1024  # htmx alone is about 17 KB of it
LINKED = re.compile(r'<(?:script[^>]*\bsrc|link[^>]*\bhref)="([^"]+)"')


def gz(data: bytes) -> int:
    """Bytes on the wire with gzip at the usual level."""
    return len(gzip.compress(data, compresslevel=6, mtime=0))


def measure(client) -> dict[str, int]:
    """Gzip bytes per URL of the first open, fetched through a Flask test client."""
    sizes = {}
    for url in ("/embed.js", "/w/default?page=https%3A%2F%2Fhost.example%2F"):
        with client.get(url) as response:
            assert response.status_code == 200, url
            body = response.get_data()
        sizes[url.split("?")[0]] = gz(body)
        if url.startswith("/w/"):
            for linked in LINKED.findall(body.decode()):
                with client.get(linked) as asset:
                    assert asset.status_code == 200, linked
                    sizes[linked] = gz(asset.get_data())
    return sizes


def unminified(url: str, served: int) -> int:
    """The gzip size the URL would have if its file were served as written (not minified)."""
    path = url.split("?")[0]
    if path == "/embed.js":
        path = "/static/embed.js"
    if not path.startswith("/static/"):
        return served  # rendered by the app: nothing to minify
    return gz((ROOT / "static" / path.removeprefix("/static/")).read_bytes())


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from webwidget.app import create_app
    from webwidget.settings import Settings

    with tempfile.TemporaryDirectory() as instance:
        settings = Settings(_env_file=None, WEBWIDGET_DEMO=True)
        app = create_app(settings=settings, instance_path=instance)
        sizes = measure(app.test_client())
    sources = {url: unminified(url, size) for url, size in sizes.items()}
    print(f"{'as written':>12} {'served':>9}")
    for url, size in sizes.items():
        print(f"{sources[url]:>10} B {size:>7} B  {url}")
    total, written = sum(sizes.values()), sum(sources.values())
    loader, loader_written = sizes["/embed.js"], sources["/embed.js"]
    print(f"{loader_written:>10} B {loader:>7} B  loader (budget {LOADER_BUDGET})")
    print(f"{written:>10} B {total:>7} B  first open (budget {FIRST_OPEN_BUDGET})")
    return 0 if loader <= LOADER_BUDGET and total <= FIRST_OPEN_BUDGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
