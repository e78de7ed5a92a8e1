"""The loader route, its byte budget, and the host origin the iframe page trusts."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from conftest import HOST_ORIGIN

from webwidget.web import embedding

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


def themed_visitor(sandbox, tmp_path, **settings):
    from conftest import Visitor, widget_settings

    from webwidget.app import create_app

    store = f"sqlite:///{tmp_path / 'sessions.sqlite3'}"
    app = create_app(
        settings=widget_settings(sandbox.url, store, **settings), instance_path=str(tmp_path)
    )
    app.config["TESTING"] = True
    return Visitor(app.test_client())


def test_loader_config_comes_from_the_widget_theme(sandbox, tmp_path):
    visitor = themed_visitor(
        sandbox, tmp_path, WIDGET_POSITION="left", WIDGET_PRIMARY_COLOR="#0a6b3d"
    )
    response = visitor.get("/embed/default.json", headers={"Origin": HOST_ORIGIN})
    config = response.get_json()
    assert config["position"] == "left"
    assert config["colors"]["light"] == ["#0a6b3d", "#ffffff"]
    # No dark colour set: the owner's colour is kept for dark, as in the header.
    assert config["colors"]["dark"][0] == "#0a6b3d"
    assert response.headers["Access-Control-Allow-Origin"] == HOST_ORIGIN
    assert "public" in response.headers["Cache-Control"]


def test_loader_config_is_not_given_to_an_origin_that_may_not_embed(visitor):
    response = visitor.get("/embed/default.json", headers={"Origin": "https://evil.example"})
    body = response.get_json()
    # The loader reads only what to fix (it shows no launcher): no theme, no words.
    assert set(body) == {"error", "status"} and body["status"] == 403
    assert "https://evil.example" in body["error"] and "WIDGET_ALLOWED_ORIGINS" in body["error"]
    assert response.headers["Access-Control-Allow-Origin"] == "https://evil.example"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Origin" in response.headers["Vary"]


def test_an_unknown_widget_id_names_the_fix(visitor):
    body = visitor.get("/embed/nope.json", headers={"Origin": HOST_ORIGIN}).get_json()
    assert body["status"] == 404
    assert '"nope"' in body["error"] and "data-widget" in body["error"]


def test_refused_embeds_are_logged_once_per_widget_and_origin_a_while(visitor, clock, caplog):
    caplog.set_level(logging.WARNING, logger="webwidget.web.embedding")

    def lines():
        return [r.getMessage() for r in caplog.records if "embed refused" in r.getMessage()]

    for _ in range(5):
        visitor.get("/embed/default.json", headers={"Origin": "https://evil.example"})
        visitor.get("/embed/nope.json", headers={"Origin": HOST_ORIGIN})
    assert len(lines()) == 2
    assert "'default'" in lines()[0] and "https://evil.example" in lines()[0]
    assert "'nope'" in lines()[1] and HOST_ORIGIN in lines()[1]
    clock.advance(embedding.REFUSAL_LOG_SECONDS + 1)
    visitor.get("/embed/default.json", headers={"Origin": "https://evil.example"})
    assert len(lines()) == 3
    # A scan of made-up ids: a few lines a minute, not one per id.
    for n in range(50):
        visitor.get(f"/embed/scan{n}.json", headers={"Origin": HOST_ORIGIN})
    assert len(lines()) == embedding.REFUSAL_LOG_PER_MINUTE + 2


def test_loader_words_follow_the_language_and_keep_the_title(visitor):
    english = visitor.get("/embed/default.json?lang=en").get_json()["strings"]
    assert english["open"] == "Open chat" and english["close"] == "Close chat"
    acme = visitor.get("/embed/default.json?lang=en&title=Acme%20Support").get_json()
    assert acme["strings"]["open"] == "Open Acme Support"
    assert acme["title"] == "Acme Support"
    arabic = visitor.get("/embed/default.json?lang=ar&title=Acme%20Support").get_json()
    assert arabic["lang"] == "ar"
    assert "Acme Support" in arabic["strings"]["open"] and "Open" not in arabic["strings"]["open"]
    assert "{n}" in arabic["strings"]["unread"] and "{n}" in arabic["strings"]["openUnread"]


def test_cookie_check_says_whether_the_cookie_alone_finds_the_chat(visitor):
    assert visitor.get("/w/default/cookie").get_json() == {"cookie": False}
    handle = visitor.start().headers["X-Widget-Session"]
    response = visitor.get("/w/default/cookie")
    assert response.get_json() == {"cookie": True}
    assert "no-store" in response.headers["Cache-Control"]
    # Asked with the header, the answer is no: only the cookie counts here.
    with_header = visitor.get("/w/default/cookie", headers={"X-Widget-Session": handle})
    assert with_header.get_json() == {"cookie": False}
    assert visitor.get("/w/nope/cookie").status_code == 404
