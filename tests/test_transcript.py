"""The visitor's transcript (/w/<widget>/transcript): the conversation as a file to keep,
rendered on the server from the session's chat, with nothing secret in it."""

from __future__ import annotations

import re

from conftest import CHANNEL_TOKEN, advance, parse_html


def chat_with_everything(visitor, sandbox) -> None:
    assert visitor.start().status_code == 303
    for text in ("hello there", "sensitive", "document", "image", "handover"):
        assert visitor.send(text).status_code == 303
        advance(sandbox, 5)


def test_the_transcript_holds_the_conversation_as_words(visitor, sandbox):
    chat_with_everything(visitor, sandbox)
    answer = visitor.get("/w/default/transcript")
    assert answer.status_code == 200
    assert answer.mimetype == "text/html"
    assert answer.headers["Content-Disposition"] == 'attachment; filename="chat-transcript.html"'
    # The headers every HTML response carries.
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["Cache-Control"] == "no-store"
    html = answer.get_data(as_text=True)
    doc = parse_html(html)
    # A file that reads on its own: no script, no stylesheet, no form.
    assert not {"script", "link", "form", "iframe", "img"} & {tag for tag, _ in doc.tags}
    text = " ".join(doc.text)
    for said in ("Ahoy!", "hello there", "You said: hello there", "[manifest.pdf]",
                 "Here is the manifest.", "[harbour.png]", "The harbour at dawn",
                 "You are being connected to an agent.", "Sensitive message not included"):
        assert said in text, said
    assert text.index("Ahoy!") < text.index("hello there") < text.index("[manifest.pdf]")
    assert text.count("You") >= 5  # each of the visitor's messages says who


def test_nothing_secret_is_in_the_transcript(visitor, sandbox):
    chat_with_everything(visitor, sandbox)
    html = visitor.get("/w/default/transcript").get_data(as_text=True)
    # The sensitive message's content stays out, as on screen until the visitor asks.
    assert "424242" not in html
    # No contact, token, conversation or message id (the sandbox's ids have these
    # prefixes), no channel token, no file URL (a signed URL would outlive the chat).
    assert not re.search(r"\b(ct|wt|cv|msg)_[A-Za-z0-9_-]{6}", html), html
    assert CHANNEL_TOKEN not in html
    assert "/_sandbox/files/" not in html and "http://127.0.0.1" not in html


def test_the_transcript_is_in_the_visitors_language(visitor, sandbox):
    assert visitor.start(lang="de").status_code == 303
    html = visitor.get(
        "/w/default/transcript", headers={"Accept-Language": "de"}
    ).get_data(as_text=True)
    assert '<html lang="de"' in html
    assert "Chatverlauf, gespeichert am" in html


def test_the_header_offers_the_transcript_only_during_a_chat(visitor, sandbox):
    assert "/w/default/transcript" not in visitor.get("/w/default").get_data(as_text=True)
    assert visitor.get("/w/default/transcript").status_code == 404
    visitor.start()
    page = parse_html(visitor.get("/w/default").get_data(as_text=True))
    links = [attrs for tag, attrs in page.tags if tag == "a" and "data-ww-transcript" in attrs]
    assert [link["href"] for link in links] == ["/w/default/transcript"]
    assert links[0]["download"] == "chat-transcript.html"
    visitor.end()
    assert visitor.get("/w/default/transcript").status_code == 404
