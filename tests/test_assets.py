"""Static assets: fingerprinted URLs, immutable caching, brotli and gzip, no session."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import subprocess
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
        source = (STATIC / path.removeprefix("/static/")).read_bytes()
        original = visitor.get(path, headers={"Accept-Encoding": "identity"}).get_data()
        # The fingerprint is the hash of the bytes served (ours minified, vendored as is).
        assert query == f"v={hashlib.sha256(original).hexdigest()[:12]}"
        if path.endswith(".min.js"):
            assert original == source
        else:
            assert len(original) < len(source) * 0.9, path
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
    assert visitor.client.get_cookie("__Host-ww_session-default") is not None
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


def test_aliases_of_one_file_share_one_cache_entry_and_one_compression(app, visitor):
    """`a/../x`, `./x` and `//x` name the same file: one entry, compressed once, bounded."""
    from webwidget.web import assets as assets_module

    cache = app.extensions[assets_module.EXTENSION]
    entries = len(cache)  # the page render may have cached the file already
    real = "vendor/htmx-2.0.11.min.js"
    compressed = []
    original = brotli.compress
    assets_module.brotli.compress = lambda data, **kw: compressed.append(1) or original(data, **kw)
    try:
        aliases = [real, f"./{real}", "vendor//htmx-2.0.11.min.js", f"css/../{real}"]
        aliases += [f"a{n}/../{real}" for n in range(40)]
        for alias in aliases:
            got = visitor.get(f"/static/{alias}", headers={"Accept-Encoding": "br"})
            assert got.status_code == 200, alias
            assert brotli.decompress(got.get_data()) == (STATIC / real).read_bytes()
    finally:
        assets_module.brotli.compress = original
    assert len(cache) <= entries + 1  # 44 names, at most one new entry
    assert len(compressed) <= 1  # none if the page render already compressed it


def test_the_asset_cache_is_bounded(app, tmp_path):
    from webwidget.web.assets import Assets

    for n in range(10):
        (tmp_path / f"f{n}.css").write_text("x" * 300)
    cache = Assets(str(tmp_path), max_assets=4)
    for n in range(10):
        assert cache.get(f"f{n}.css") is not None
    assert len(cache) == 4


def test_our_scripts_and_styles_are_minified_and_vendored_ones_kept(visitor):
    for name in ("js/widget.js", "embed.js", "css/widget.css", "messages.css"):
        source = (STATIC / name).read_bytes()
        served = visitor.get(f"/static/{name}", headers={"Accept-Encoding": "identity"})
        body = served.get_data()
        assert len(body) < len(source) * 0.9, name
        assert b"/*" not in body and b"\n\n" not in body, name  # comments and blank lines gone
    loader = visitor.get("/embed.js", headers={"Accept-Encoding": "identity"}).get_data()
    assert loader == visitor.get("/static/embed.js").get_data()
    htmx = "vendor/htmx-2.0.11.min.js"
    assert visitor.get(f"/static/{htmx}").get_data() == (STATIC / htmx).read_bytes()


def test_minified_scripts_still_parse(visitor, tmp_path):
    """The minifier's output is valid JavaScript to Node's parser (the browsers run it too)."""
    for name in ("js/widget.js", "embed.js"):
        script = tmp_path / name.replace("/", "-")
        script.write_bytes(visitor.get(f"/static/{name}").get_data())
        checked = subprocess.run(["node", "--check", str(script)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr


def test_a_changed_source_gets_a_new_fingerprint_and_etag(app, tmp_path):
    """A one-character change to code changes the URL and the ETag; comments never ship."""
    from flask import url_for

    from webwidget.web import assets

    script = tmp_path / "app.js"
    script.write_text("/* why */\nfunction greet(name) {\n  return 'hi ' + name;\n}\n" * 20)
    site = assets.AssetServingFlask(__name__, static_folder=str(tmp_path))
    assets.init_app(site)
    client = site.test_client()

    def served():
        with site.test_request_context():
            url = url_for("static", filename="app.js")
        response = client.get(url, headers={"Accept-Encoding": "gzip"})
        assert response.headers["Cache-Control"] == assets.IMMUTABLE
        return url, response.headers["ETag"], gzip.decompress(response.get_data())

    url, etag, body = served()
    assert b"why" not in body and b"function greet(" in body
    stamp = script.stat().st_mtime_ns + 10**9
    script.write_text(script.read_text().replace("'hi '", "'hey '"))
    os.utime(script, ns=(stamp, stamp))
    new_url, new_etag, new_body = served()
    assert new_url != url and new_etag != etag and b"'hey '" in new_body


def test_the_loader_is_served_compressed_with_an_etag(visitor):
    first = visitor.get("/embed.js", headers={"Accept-Encoding": "br"})
    assert first.headers["Content-Encoding"] == "br"
    assert first.headers["Cache-Control"] == "public, max-age=300"
    assert first.mimetype == "text/javascript"
    assert brotli.decompress(first.get_data()) == visitor.get("/static/embed.js").get_data()
    again = visitor.get(
        "/embed.js", headers={"Accept-Encoding": "br", "If-None-Match": first.headers["ETag"]}
    )
    assert again.status_code == 304
