"""Background refreshes: their log lines carry the id of the poll that asked for them,
and a refresh dropped because every slot was busy is counted."""

from __future__ import annotations

import json
import re
import threading

from conftest import Visitor, faults, https_client, make_app
from test_operability import SCRAPE, metric

from webwidget.coalesce import Refresher
from webwidget.web.visitor import core_of

POLLER = re.compile(r'<div id="ww-poller"[^>]*hx-get="([^"]+)"')


def background_app(sandbox, tmp_path, clock, slots: int):
    """An app whose background refreshes wait in `tasks` until the test runs them."""
    app = make_app(sandbox, tmp_path, clock=clock, UPSTREAM_REFRESH_CALLS=slots,
                   METRICS_TOKEN=SCRAPE["Authorization"].split()[1])
    tasks: list = []
    coalescer = core_of(app).coalescer
    assert coalescer.refresher is not None
    # The app's own hooks stay: drops are counted, and jobs carry the asking request's id.
    coalescer.refresher = Refresher(slots, spawn=tasks.append,
                                    dropped=coalescer.refresher.dropped,
                                    carry=coalescer.refresher.carry)
    return app, tasks


def chatting(app) -> tuple[Visitor, str]:
    visitor = Visitor(https_client(app))
    visitor.start()
    page = visitor.get("/w/default").get_data(as_text=True)
    return visitor, POLLER.search(page).group(1).replace("&amp;", "&")


def test_a_failed_background_refresh_logs_the_id_of_the_poll_that_asked(
    sandbox, tmp_path, clock, capsys
):
    app, tasks = background_app(sandbox, tmp_path, clock, slots=4)
    visitor, url = chatting(app)
    clock.advance(2)  # the page's list is past its share of the interval
    asked = visitor.get(url, headers={"HX-Request": "true", "X-Request-ID": "poll-that-asked-1"})
    assert asked.status_code == 204 and len(tasks) == 1
    faults(sandbox, error_status=500, operations=["list_messages"])
    capsys.readouterr()
    # Run as the pool does: on its own thread, long after the poll's answer.
    runner = threading.Thread(target=tasks.pop())
    runner.start()
    runner.join(10)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()
             if line.startswith("{")]
    refresh = [line for line in lines if "list_messages" in line["message"]
               or "background refresh failed" in line["message"]]
    assert any("background refresh failed" in line["message"] for line in refresh)
    assert any("chatcaptain list_messages failed" in line["message"] for line in refresh)
    assert {(line["request_id"], line.get("background")) for line in refresh} == {
        ("poll-that-asked-1", "refresh")
    }


def test_a_refresh_dropped_because_every_slot_is_busy_is_counted(sandbox, tmp_path, clock):
    app, tasks = background_app(sandbox, tmp_path, clock, slots=1)
    first, second = chatting(app), chatting(app)
    scrape = https_client(app)
    before = metric(scrape.get("/metrics", headers=SCRAPE).get_data(as_text=True),
                    "webwidget_background_refreshes_dropped_total")
    clock.advance(2)
    for visitor, url in (first, second):
        assert visitor.get(url, headers={"HX-Request": "true"}).status_code == 204
    assert len(tasks) == 1  # the one slot holds the first conversation's refresh
    after = metric(scrape.get("/metrics", headers=SCRAPE).get_data(as_text=True),
                   "webwidget_background_refreshes_dropped_total")
    assert after - before == 1
