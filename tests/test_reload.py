"""A reload (SIGHUP) whose new workers could not start leaves the old ones serving: the
start-up check runs again first, and refuses the reload in one log line."""

from __future__ import annotations

import json
import signal

import requests
from conftest import CHANNEL_TOKEN, wait_until
from test_scale_out import Instance, instance_env

WIDGETS = """
[widgets.extra]
chatbot_id = "demo-bot"
channel_id = "channel_abc123"
channel_token_env = "EXTRA_CHANNEL_TOKEN"
allowed_origins = ["https://host.example"]
"""


def said(instance: Instance) -> list[str]:
    """The messages of gunicorn's JSON log so far."""
    return [json.loads(line).get("message", "") for line in
            instance.log.read_text().splitlines() if line.startswith("{")]


def built_workers(instance: Instance) -> set[str]:
    """The pids of workers whose app exists: each writes its metrics files on building."""
    return {path.stem.rsplit("_", 1)[1]
            for path in instance.folder.glob("webwidget-metrics-*/*_*.db")}


def test_a_reload_with_a_broken_widgets_file_keeps_the_old_workers(sandbox, tmp_path):
    widgets = tmp_path / "widgets.toml"
    widgets.write_text(WIDGETS)
    env = instance_env(sandbox.url, f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
                       WIDGETS_FILE=str(widgets), EXTRA_CHANNEL_TOKEN=CHANNEL_TOKEN,
                       WEB_CONCURRENCY="2")
    instance = Instance("reload", tmp_path, env)
    instance.start()
    try:
        # Both workers have built the app (each has its metrics files) before the file
        # breaks: a worker still booting would read the broken file itself.
        wait_until(lambda: len(built_workers(instance)) == 2, timeout=60,
                   what="both workers to build the app")
        widgets.write_text("[widgets.extra\nbroken = ")
        instance.process.send_signal(signal.SIGHUP)
        wait_until(lambda: any(m.startswith("reload refused") for m in said(instance)),
                   timeout=60, what="the reload to be refused")
        assert instance.process.poll() is None
        # The check's own marker is no misspelt setting.
        assert not any("reads no such variable" in m for m in said(instance))
        for _ in range(5):
            assert requests.get(instance.url + "/w/extra", timeout=10).status_code == 200
        assert any("WIDGETS_FILE" in m or "widgets.toml" in m
                   for m in instance.log.read_text().splitlines())
        # Fixed, the next reload goes through: two new workers boot.
        widgets.write_text(WIDGETS)
        booted = sum(m.startswith("Booting worker") for m in said(instance))
        instance.process.send_signal(signal.SIGHUP)
        wait_until(lambda: sum(m.startswith("Booting worker") for m in said(instance))
                   == booted + 2, timeout=60, what="new workers after a good reload")
        assert requests.get(instance.url + "/w/extra", timeout=10).status_code == 200
    finally:
        instance.stop()
