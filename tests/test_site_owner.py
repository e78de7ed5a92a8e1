"""What a site owner sets up: read-only mode says so, titles in the visitor's language, docs."""

from __future__ import annotations

from pathlib import Path

from conftest import Visitor, https_client, widget_settings

from webwidget import create_app

ROOT = Path(__file__).resolve().parent.parent


def visitor_for(sandbox, tmp_path, **settings) -> Visitor:
    store = f"sqlite:///{tmp_path / 'sessions.sqlite3'}"
    app = create_app(
        settings=widget_settings(sandbox.url, store, **settings), instance_path=str(tmp_path)
    )
    app.config["TESTING"] = True
    return Visitor(https_client(app))


def test_read_only_mode_has_no_dead_controls_and_says_why(sandbox, tmp_path):
    visitor = visitor_for(sandbox, tmp_path, CHATCAPTAIN_SENDING_ENABLED=False)
    assert visitor.start().status_code == 303
    html = visitor.get("/w/default?lang=en").get_data(as_text=True)
    assert "data-message-id" in html, "the greeting is shown"
    assert "<textarea" not in html and "disabled" not in html
    assert "Replies can't be sent from this chat." in html
    arabic = visitor.get("/w/default?lang=ar").get_data(as_text=True)
    assert "لا يمكن إرسال الردود من هذه المحادثة." in arabic


def test_default_title_follows_the_visitors_language(sandbox, tmp_path):
    visitor = visitor_for(sandbox, tmp_path)
    assert ">Chat with us</h1>" in visitor.get("/w/default?lang=en").get_data(as_text=True)
    assert ">تحدث معنا</h1>" in visitor.get("/w/default?lang=ar").get_data(as_text=True)


def test_a_title_the_owner_chose_is_kept_as_written(sandbox, tmp_path):
    visitor = visitor_for(sandbox, tmp_path / "acme", WIDGET_TITLE="Acme Support")
    assert ">Acme Support</h1>" in visitor.get("/w/default?lang=ar").get_data(as_text=True)


def test_hosting_docs_name_the_sending_setting_and_what_it_means():
    for page in ("paas.md", "systemd.md"):
        text = (ROOT / "docs" / "hosting" / page).read_text()
        assert "CHATCAPTAIN_SENDING_ENABLED" in text, page
        assert "read-only" in text.lower(), page
