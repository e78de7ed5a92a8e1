"""Print the gzip sizes of the loader and of everything the first open of the widget loads.

Usage: .venv/bin/python scripts/embed_sizes.py
The first open is the loader, the iframe page's HTML (welcome view) and every stylesheet
and script that page links (htmx included). Sizes are gzip -6, as a proxy would serve them.
"""

from __future__ import annotations

import gzip
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# 4 KB: the theme and language fetch, the open/close icon and the one-widget guard (was 3 KB).
LOADER_BUDGET = 4 * 1024
# 32 KB: widget.js keeps the newest message in view, focus, local times, the typing
# indicator and the words of a failed send (about 2 KB more; htmx is 17 KB of it).
FIRST_OPEN_BUDGET = 32 * 1024
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


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from webwidget import create_app
    from webwidget.settings import Settings

    with tempfile.TemporaryDirectory() as instance:
        app = create_app(settings=Settings(_env_file=None), instance_path=instance)
        sizes = measure(app.test_client())
    for url, size in sizes.items():
        print(f"{size:>7} B  {url}")
    total = sum(sizes.values())
    print(f"{sizes['/embed.js']:>7} B  loader (budget {LOADER_BUDGET})")
    print(f"{total:>7} B  first open (budget {FIRST_OPEN_BUDGET})")
    return 0 if sizes["/embed.js"] <= LOADER_BUDGET and total <= FIRST_OPEN_BUDGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
