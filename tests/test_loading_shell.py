"""The frame's shell (views.conversation_page, _loading.html): in the panel, a page load
with no message list at hand shows the header and a skeleton at once, and htmx fills it."""

from __future__ import annotations

import time

import pytest
from conftest import Visitor, faults, heal, https_client, make_app, parse_html

PANEL = {"Sec-Fetch-Dest": "iframe"}


@pytest.fixture
def visitor(sandbox, tmp_path):
    """A visitor of an app with the production default: polls refresh in the background."""
    app = make_app(sandbox, tmp_path, UPSTREAM_REFRESH_CALLS=4)
    return Visitor(https_client(app))


def test_a_cold_panel_load_shows_the_shell_without_waiting_for_the_upstream(visitor, sandbox):
    assert visitor.start().status_code == 303
    # Far slower than the bound below, which leaves room for a busy machine.
    faults(sandbox, latency_ms=8000, operations=["list_messages"])
    try:
        started = time.monotonic()
        shell = visitor.get("/w/default?page=https%3A%2F%2Fhost.example%2F&lang=de", headers=PANEL)
        took = time.monotonic() - started
    finally:
        heal(sandbox)
    assert shell.status_code == 200
    assert took < 4, f"{took:.2f} s: the page waited for the upstream (8 s)"
    doc = parse_html(shell.get_data(as_text=True))
    loading = [attrs for tag, attrs in doc.tags if attrs.get("id") == "ww-loading"]
    assert len(loading) == 1 and loading[0]["aria-busy"] == "true"
    # htmx loads the conversation into #ww-main, with the loader's page and language.
    assert loading[0]["hx-trigger"] == "load" and loading[0]["hx-target"] == "#ww-main"
    assert loading[0]["hx-get"].startswith("/w/default?")
    assert "lang=de" in loading[0]["hx-get"]
    assert any(attrs.get("class") == "ww-title" for _, attrs in doc.tags)  # the header
    # Without script the page reloads once and then waits for the upstream.
    refresh = [a for t, a in doc.tags if t == "meta" and a.get("http-equiv") == "refresh"]
    assert refresh and "wait=1" in refresh[0]["content"]


def test_the_shells_fragment_and_the_no_script_reload_bring_the_conversation(visitor, sandbox):
    assert visitor.start().status_code == 303
    faults(sandbox, latency_ms=1500, operations=["list_messages"])
    try:
        shell = visitor.get("/w/default", headers=PANEL).get_data(as_text=True)
        assert 'id="ww-loading"' in shell
        fragment = visitor.get("/w/default", headers={**PANEL, "HX-Request": "true"})
        waited = visitor.get("/w/default?wait=1", headers=PANEL)
    finally:
        heal(sandbox)
    assert "Ahoy!" in fragment.get_data(as_text=True)
    assert 'id="ww-conversation"' in fragment.get_data(as_text=True)
    assert "Ahoy!" in waited.get_data(as_text=True)


def test_outside_the_panel_the_page_is_whole_as_before(visitor, sandbox):
    # A top-level visit (or no fetch metadata) gets the conversation in the page itself.
    assert visitor.start().status_code == 303
    html = visitor.get("/w/default").get_data(as_text=True)
    assert "Ahoy!" in html and 'id="ww-loading"' not in html
