"""The loader route, its byte budget, and the host origin the iframe page trusts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from conftest import HOST_ORIGIN

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("embed_sizes", ROOT / "scripts" / "embed_sizes.py")
embed_sizes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(embed_sizes)


def test_loader_is_served_as_script_for_any_site(visitor):
    with visitor.get("/embed.js") as response:
        body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert "max-age=300" in response.headers["Cache-Control"]
    assert "postMessage" in body and "'*'" not in body and '"*"' not in body


def test_loader_and_first_open_fit_the_budget(visitor):
    sizes = embed_sizes.measure(visitor.client)
    print({"loader": sizes["/embed.js"], "first_open": sum(sizes.values())})
    paths = {url.split("?")[0] for url in sizes}  # static URLs carry ?v=<fingerprint>
    assert "/static/vendor/htmx-2.0.11.min.js" in paths and "/static/js/widget.js" in paths
    assert sizes["/embed.js"] <= embed_sizes.LOADER_BUDGET
    assert sum(sizes.values()) <= embed_sizes.FIRST_OPEN_BUDGET


def test_host_origin_is_exposed_only_when_allowed(visitor):
    allowed = visitor.get(f"/w/default?page={HOST_ORIGIN}/shop/page%3Fa%3D1").get_data(as_text=True)
    assert f'data-host-origin="{HOST_ORIGIN}"' in allowed
    for page in ("https://evil.example/", "javascript:alert(1)", "", "https://host.example.evil/"):
        html = visitor.get("/w/default", query_string={"page": page}).get_data(as_text=True)
        assert "data-host-origin" not in html, page


def test_the_session_handle_never_travels_in_a_url(visitor):
    started = visitor.start()
    handle = started.headers.get("X-Widget-Session")
    assert handle
    assert handle not in (started.headers.get("Location") or "")
    page = visitor.get(f"/w/default?page={HOST_ORIGIN}/").get_data(as_text=True)
    assert handle not in page
