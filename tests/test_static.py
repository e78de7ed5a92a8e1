"""Vendored static assets are exactly the pinned releases."""

from __future__ import annotations

import hashlib
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "static"

# htmx.org 2.0.11, dist/htmx.min.js from the npm registry tarball.
HTMX_SHA256 = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"


def test_vendored_htmx_is_the_pinned_release():
    data = (STATIC / "vendor" / "htmx-2.0.11.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == HTMX_SHA256


def test_the_page_loads_the_pinned_htmx(visitor):
    html = visitor.get("/w/default").get_data(as_text=True)
    assert "/static/vendor/htmx-2.0.11.min.js" in html
