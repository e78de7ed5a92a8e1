"""Never lose a word or a chat (issue 20, docs/reliability.md): refusals keep the chat,
a lost session keeps the words, and nothing is created upstream that no session keeps."""

from __future__ import annotations

import html
import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import redis
from conftest import (
    Visitor,
    advance,
    faults,
    free_port,
    heal,
    https_client,
    make_app,
    redis_answers,
    stats,
    wait_until,
)

from webwidget.ops.metrics import get_metrics

STATUS_BOX = re.compile(r'<div id="ww-status"[^>]*>(.*?)</div>', re.S)
DRAFT = re.compile(r'<textarea id="ww-draft"[^>]*>(.*?)</textarea>', re.S)


def status_text(body: str) -> str:
    """What the #ww-status box says."""
    match = STATUS_BOX.search(body)
    assert match, "no #ww-status"
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()


def kept_draft(body: str) -> str:
    """The words the lost-chat view holds for the new chat."""
    match = DRAFT.search(body)
    assert match, "the words are not on the page"
    return html.unescape(match.group(1))


def lost_count(app, reason: str, at: str) -> float:
    """webwidget_sessions_lost_total for one reason and place."""
    registry = get_metrics(app).registry
    value = registry.get_sample_value(
        "webwidget_sessions_lost_total", {"reason": reason, "at": at}
    )
    return value or 0.0


def visitor_messages(sandbox_stats_before: int, sandbox) -> int:
    """How many sends reached the sandbox since `sandbox_stats_before`."""
    return stats(sandbox)["send_message"] - sandbox_stats_before


def shown(visitor: Visitor, words: str) -> int:
    """How often the visitor's page shows `words` as a message."""
    return visitor.get("/w/default").get_data(as_text=True).count(f">{words}<")


# -- 2. a refusal is not proof that the chat is gone ------------------------------------


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_a_refusal_on_every_call_keeps_the_chat_and_acknowledges_no_send(
    app, visitor, sandbox, status, caplog
):
    """An API-key rotation or an auth blip: the visitor is told, nothing is pretended, and
    once the upstream answers again the same chat goes on and the words arrive once."""
    assert visitor.start().status_code == 303
    form = {"text": f"during the {status}", "client_id": f"blip-{status}-0123456789"}
    faults(sandbox, error_status=status, operations=["list_messages", "send_message",
                                                    "create_conversation"])
    for _ in range(3):
        page = visitor.get("/w/default")
        assert page.status_code == 502
        assert "can't be reached right now" in status_text(page.get_data(as_text=True))
        refused = visitor.post("/w/default/send", form, htmx=True)
        assert refused.status_code == 502
        assert "can't be reached right now" in status_text(refused.get_data(as_text=True))
    # Without script, the words come back in the box with their id.
    plain = visitor.post("/w/default/send", form)
    assert plain.status_code == 502
    body = plain.get_data(as_text=True)
    assert f">{form['text']}</textarea>" in body and form["client_id"] in body
    heal(sandbox)
    before = stats(sandbox)["send_message"]
    assert visitor.post("/w/default/send", form).status_code == 303
    assert visitor_messages(before, sandbox) == 1
    assert shown(visitor, form["text"]) == 1
    assert "session lost" not in caplog.text


# -- 3. a lost session does not lose the words -----------------------------------------


def handle_of(response) -> str:
    """The handle a response issued."""
    value = response.headers.get("X-Widget-Session")
    assert value, "no handle issued"
    return value


def test_a_send_after_the_chat_ended_in_another_tab_keeps_the_words(app, sandbox, caplog):
    first = Visitor(https_client(app))
    handle = handle_of(first.start())
    other_tab = Visitor(https_client(app))
    assert other_tab.end(headers={"X-Widget-Session": handle}).status_code == 303
    before = stats(sandbox)
    caplog.set_level(logging.WARNING, logger="webwidget.web.views")
    form = {"text": "my order <b>#42</b> never came", "client_id": "lost-0123456789ab"}
    answer = first.post("/w/default/send", form, htmx=True)
    assert answer.status_code == 409
    assert answer.headers["HX-Retarget"] == "#ww-main"
    body = answer.get_data(as_text=True)
    assert kept_draft(body) == form["text"]  # escaped as text, kept as typed
    assert "<b>#42</b>" not in body
    assert "no longer available" in status_text(body)
    assert "Start a new chat and send" in body
    assert stats(sandbox) == before  # nothing was sent, nothing created
    lines = [r.getMessage() for r in caplog.records if "session lost" in r.getMessage()]
    assert lines == ["session lost at send: the chat ended (in another tab, or by the idle "
                     "timeout)"]
    assert form["text"] not in caplog.text  # never the visitor's words
    assert lost_count(app, "ended", "send") == 1
    # The one action: a new chat, and the words go as its first message, once.
    started = first.post("/w/default/start", {"text": kept_draft(body), "client_id": form[
        "client_id"]})
    assert started.status_code == 303
    assert stats(sandbox)["send_message"] == before["send_message"] + 1
    assert shown(first, html.escape(form["text"], quote=False)) == 1


def test_without_script_a_send_after_the_chat_ended_shows_the_words_and_one_action(
    app, visitor
):
    handle_of(visitor.start())
    visitor.end()
    answer = visitor.post("/w/default/send", {"text": "still here?"})
    assert answer.status_code == 409
    body = answer.get_data(as_text=True)
    assert "<!doctype html>" in body.lower()
    assert kept_draft(body) == "still here?"
    forms = re.findall(r'<form[^>]*action="([^"]+)"', body)
    assert forms.count("/w/default/start") == 1


def test_a_poll_after_the_chat_ended_stops_and_says_so(app, sandbox):
    visitor = Visitor(https_client(app))
    handle = handle_of(visitor.start())
    Visitor(https_client(app)).end(headers={"X-Widget-Session": handle})
    answer = visitor.get("/w/default/messages", headers={"HX-Request": "true"})
    assert answer.status_code == 286
    assert "The chat has ended" in status_text(answer.get_data(as_text=True))
    assert lost_count(app, "ended", "poll") == 1


def test_an_idle_session_that_timed_out_keeps_the_words(sandbox, tmp_path, clock, caplog):
    app = make_app(sandbox, tmp_path, clock=clock, SESSION_IDLE_TIMEOUT=600)
    visitor = Visitor(https_client(app))
    visitor.start()
    clock.advance(601)
    answer = visitor.send("back from lunch")
    assert answer.status_code == 409
    assert kept_draft(answer.get_data(as_text=True)) == "back from lunch"
    assert "session lost at send: the session had passed its timeout" in caplog.text
    assert lost_count(app, "expired", "send") == 1


def test_two_instances_on_separate_sqlite_files_are_named_in_the_log(
    sandbox, tmp_path, caplog
):
    """A validly signed handle that this store never issued: the deployment mistake of
    two instances behind one address, each with its own SQLite file."""
    one = make_app(sandbox, tmp_path / "one")
    two = make_app(sandbox, tmp_path / "two")
    handle = handle_of(Visitor(https_client(one)).start())
    other = Visitor(https_client(two))
    answer = other.post(
        "/w/default/send", {"text": "hello?"}, headers={"X-Widget-Session": handle}, htmx=True
    )
    assert answer.status_code == 409
    assert kept_draft(answer.get_data(as_text=True)) == "hello?"
    assert "separate SQLite files" in caplog.text
    assert lost_count(two, "unknown", "send") == 1
    poll = other.get("/w/default/messages", headers={"X-Widget-Session": handle,
                                                      "HX-Request": "true"})
    assert poll.status_code == 286
    assert "no longer available" in status_text(poll.get_data(as_text=True))


@pytest.fixture
def own_redis():
    """A redis-server of this test's own: it is flushed or filled, which no other test
    running beside it may see."""
    port = free_port()
    process = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: redis_answers(port, process), timeout=10, what="redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_a_flushed_redis_is_told_from_an_ended_chat(sandbox, tmp_path, own_redis, caplog):
    app = make_app(sandbox, tmp_path, store_url=own_redis)
    visitor = Visitor(https_client(app))
    visitor.start()
    with redis.Redis.from_url(own_redis) as client:
        client.flushdb()
    answer = visitor.send("are you still there?")
    assert answer.status_code == 409
    assert lost_count(app, "unknown", "send") == 1
    assert "a store emptied since" in caplog.text


# -- 6. nothing upstream that no session could keep ----------------------------------


def test_a_start_on_a_full_redis_creates_nothing_upstream(sandbox, tmp_path, own_redis,
                                                        caplog):
    client = redis.Redis.from_url(own_redis)
    app = make_app(sandbox, tmp_path, store_url=own_redis)
    visitor = Visitor(https_client(app))
    before = stats(sandbox)
    client.config_set("maxmemory", 1)
    client.config_set("maxmemory-policy", "noeviction")
    try:
        for _ in range(5):
            answer = visitor.start()
            assert answer.status_code == 503
    finally:
        client.config_set("maxmemory", 0)
        client.close()
    assert stats(sandbox)["create_contact"] == before["create_contact"]
    assert stats(sandbox)["create_conversation"] == before["create_conversation"]
    assert "maxmemory" in caplog.text  # the real cause, not a generic line
    assert visitor.start().status_code == 303  # and it works once Redis has room


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB filesystem of its own, for a disk that fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> None:
    """Write until the filesystem is full."""
    with (disk / "filler").open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass


def test_a_start_on_a_full_disk_creates_nothing_upstream(sandbox, tiny_disk, caplog):
    app = make_app(sandbox, tiny_disk)
    visitor = Visitor(https_client(app))
    before = stats(sandbox)
    fill(tiny_disk)
    answer = visitor.start()
    assert answer.status_code == 503
    assert stats(sandbox)["create_contact"] == before["create_contact"]
    assert "disk is full" in caplog.text
    (tiny_disk / "filler").unlink()
    assert visitor.start().status_code == 303


# -- 7. one long conversation costs what a short one does ----------------------------


MESSAGE_ID = re.compile(r'data-message-id="([^"]+)"')
EARLIER = re.compile(r'<a class="ww-earlier__link" href="([^"]+)"')


def test_a_long_conversation_shows_its_newest_messages_and_the_rest_on_demand(
    sandbox, tmp_path, clock
):
    app = make_app(sandbox, tmp_path, clock=clock, WIDGET_MESSAGES_SHOWN=10)
    visitor = Visitor(https_client(app))
    visitor.start()
    for i in range(8):
        visitor.send(f"message {i}")
    advance(sandbox, 10)  # every bot reply is due
    page = visitor.get("/w/default").get_data(as_text=True)
    shown = MESSAGE_ID.findall(page)
    assert len(shown) == 10
    assert ">message 7<" in page and ">message 0<" not in page
    link = html.unescape(EARLIER.search(page).group(1))
    earlier = visitor.get(link, headers={"HX-Request": "true"})
    assert earlier.status_code == 200
    older = MESSAGE_ID.findall(earlier.get_data(as_text=True))
    assert older and not set(older) & set(shown)
    assert ">message 0<" in earlier.get_data(as_text=True)
    # Without script the link is a page of its own, with the way back.
    plain = visitor.get(link).get_data(as_text=True)
    assert "<!doctype html>" in plain.lower() and "Back to the newest messages" in plain
