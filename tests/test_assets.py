"""Static assets: fingerprinted URLs, immutable caching, brotli and gzip, no session."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import brotli
import pytest

STATIC = Path(__file__).resolve().parent.parent / "static"
pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', html)


def test_page_links_fingerprinted_assets_served_immutable_and_compressed(visitor):
    html = visitor.get("/w/default").get_data(as_text=True)
    urls = asset_urls(html)
    assert any("htmx-2.0.11.min.js" in u for u in urls)
    for url in urls:
        path, _, query = url.replace("&amp;", "&").partition("?")
        original = (STATIC / path.removeprefix("/static/")).read_bytes()
        assert query == f"v={hashlib.sha256(original).hexdigest()[:12]}"
        for accept, decode in (
            ("gzip, deflate, br", brotli.decompress),
            ("gzip", gzip.decompress),
            ("identity", lambda b: b),
        ):
            got = visitor.get(url.replace("&amp;", "&"), headers={"Accept-Encoding": accept})
            assert got.status_code == 200
            assert got.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert "Accept-Encoding" in got.headers.get("Vary", "")
            body = got.get_data()
            assert decode(body) == original
            if accept != "identity":
                assert len(body) < len(original)


def test_old_or_missing_fingerprints_revalidate_and_etags_answer_304(visitor):
    plain = visitor.get("/static/css/widget.css", headers={"Accept-Encoding": "br"})
    assert plain.headers["Cache-Control"] == "no-cache"
    assert plain.headers["Content-Encoding"] == "br"
    stale = visitor.get("/static/css/widget.css?v=000000000000")
    assert stale.headers["Cache-Control"] == "no-cache"
    again = visitor.get(
        "/static/css/widget.css",
        headers={"Accept-Encoding": "br", "If-None-Match": plain.headers["ETag"]},
    )
    assert again.status_code == 304
    assert again.get_data() == b""


def test_static_paths_stay_inside_the_folder(visitor):
    for path in (
        "/static/../webwidget/__init__.py",
        "/static/%2e%2e/pyproject.toml",
        "/static/nope.css",
    ):
        assert visitor.get(path).status_code == 404


def test_static_responses_never_touch_the_session(app, visitor):
    visitor.start()
    assert visitor.client.get_cookie("ww_session") is not None
    store = app.session_interface.store
    loads = []
    original = store.load
    # Count store reads (our own store object, not an edge) while a static file is served.
    store.load = lambda sid: loads.append(sid) or original(sid)
    try:
        got = visitor.get("/static/js/widget.js")
    finally:
        store.load = original
    assert got.status_code == 200
    assert loads == []
    assert "Cookie" not in got.headers.get("Vary", "")
    assert "Set-Cookie" not in got.headers
