"""`webwidget demo`: every log line is one JSON object (no ANSI colour codes from the
development server), and the line saying where to open it is INFO, not a warning."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import requests
from conftest import exited, wait_until

ROOT = Path(__file__).resolve().parent.parent
WEBWIDGET = Path(sys.executable).parent / "webwidget"


def test_demo_logs_plain_json_lines_and_says_where_to_open_it(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WEBWIDGET_", "CHATCAPTAIN_", "SESSION_", "WIDGET_"))
    }
    env["WEBWIDGET_INSTANCE_PATH"] = str(tmp_path / "instance")
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(WEBWIDGET), "demo", "--port", "0"], cwd=tmp_path, env=env,
                                stdout=out, stderr=subprocess.STDOUT)

    def where() -> re.Match | None:
        exited(proc, log)
        return re.search(r"webwidget on (http://127\.0\.0\.1:\d+)/", log.read_text())

    try:
        found = wait_until(where, timeout=60, what="the demo to log where to open it")
        url = found.group(1)
        assert requests.get(url + "/w/default", timeout=10).status_code == 200
        assert requests.get(url + "/no/such/page", timeout=10).status_code == 404
        assert requests.get(url + "/w/default/start", timeout=10).status_code == 405
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert "\x1b" not in text
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    where = [r for r in records if r["message"].startswith("webwidget on http://")]
    assert len(where) == 1 and where[0]["level"] == "INFO"
    logged = [r["message"] for r in records if "/no/such/page" in r["message"]]
    assert len(logged) == 1 and '"GET /no/such/page HTTP/1.1" 404' in logged[0], logged
