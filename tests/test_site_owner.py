"""What a site owner sets up: read-only mode says so, titles in the visitor's language, docs."""

from __future__ import annotations

from pathlib import Path

from conftest import Visitor, https_client, widget_settings

from webwidget.app import create_app

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
    # Translations are escaped as text: the apostrophe arrives as &#39;.
    assert "Replies can&#39;t be sent from this chat." in html
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


def test_the_host_pages_query_and_fragment_never_go_upstream(sandbox, tmp_path, monkeypatch):
    from conftest import HOST_ORIGIN

    from webwidget.conversation import VisitorChats

    sent = []
    real = VisitorChats.start
    monkeypatch.setattr(
        VisitorChats,
        "start",
        lambda self, widget, *, origin_url, language: sent.append(origin_url)
        or real(self, widget, origin_url=origin_url, language=language),
    )
    visitor = visitor_for(sandbox, tmp_path)
    page = visitor.get(
        "/w/default", query_string={"page": f"{HOST_ORIGIN}/account?reset_token=s3cret#x"}
    ).get_data(as_text=True)
    assert f'value="{HOST_ORIGIN}/account"' in page and "s3cret" not in page
    # An old loader (cached) or a crafted form still cannot send them upstream.
    visitor.start(page_url=f"{HOST_ORIGIN}/account?email=a%40b.example#frag")
    assert sent == [f"{HOST_ORIGIN}/account"]


def test_the_host_pages_path_parameters_never_go_upstream(sandbox, tmp_path, monkeypatch):
    from conftest import HOST_ORIGIN

    from webwidget.conversation import VisitorChats

    sent = []
    real = VisitorChats.start
    monkeypatch.setattr(
        VisitorChats,
        "start",
        lambda self, widget, *, origin_url, language: sent.append(origin_url)
        or real(self, widget, origin_url=origin_url, language=language),
    )
    visitor = visitor_for(sandbox, tmp_path)
    hosted = f"{HOST_ORIGIN}/shop;jsessionid=S3CRET1/cart;v=2;sid=S3CRET2?x=1#y"
    page = visitor.get("/w/default", query_string={"page": hosted}).get_data(as_text=True)
    assert f'value="{HOST_ORIGIN}/shop/cart"' in page and "S3CRET" not in page
    visitor.start(page_url=f"{HOST_ORIGIN}/checkout;JSESSIONID=S3CRET3")
    visitor.end()
    visitor.start(page_url=hosted)
    assert sent == [f"{HOST_ORIGIN}/checkout", f"{HOST_ORIGIN}/shop/cart"]
