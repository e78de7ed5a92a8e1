"""The hosting docs' trial commands run as written: systemd.md's by-hand ExecStart with
its own environment file prints what the page shows, and the service then answers as the
page says."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import requests
from conftest import free_port, wait_for_server

ROOT = Path(__file__).resolve().parent.parent
SYSTEMD = ROOT / "docs" / "hosting" / "systemd.md"
BIN = Path(sys.executable).parent


def blocks(text: str) -> list[str]:
    """Every fenced block's body, in order."""
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)


def block_after(text: str, marker: str) -> str:
    """The first fenced block after `marker`."""
    return blocks(text[text.index(marker):])[0]


def env_file(tmp_path: Path, port: int, **changes: str | None) -> Path:
    """systemd.md's /etc/webwidget/env with this machine's paths and port; `changes` set
    (or, with None, remove) variables."""
    lines = []
    for line in block_after(SYSTEMD.read_text(), "`/etc/webwidget/env`").splitlines():
        name = line.split("=", 1)[0]
        if name in changes:
            continue
        line = line.replace("/var/lib/webwidget", str(tmp_path / "instance"))
        line = line.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        lines.append(line)
    lines += [f"{name}={value}" for name, value in changes.items() if value is not None]
    path = tmp_path / "env"
    path.write_text("\n".join(lines) + "\n")
    return path


def trial_command(env: Path) -> str:
    """The page's by-hand ExecStart, run from this checkout as the current user."""
    command = block_after(SYSTEMD.read_text(), "read line by line as systemd reads it")
    command = command.replace("sudo runuser -u webwidget -- ", "")
    command = command.replace("cd /srv/webwidget", f"cd {ROOT}")
    command = command.replace("/etc/webwidget/env", str(env))
    return command.replace(".venv/bin/gunicorn", str(BIN / "gunicorn"))


def clean_environment() -> dict[str, str]:
    """What a service starts with: no settings of ours."""
    return {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}


def test_systemd_md_trial_without_a_secret_key_prints_what_the_page_shows(tmp_path):
    env = env_file(tmp_path, free_port(), SECRET_KEY=None)
    result = subprocess.run(["sh", "-c", trial_command(env)], env=clean_environment(),
                            capture_output=True, text=True, timeout=120)
    shown = block_after(SYSTEMD.read_text(), "With `SECRET_KEY` left out").splitlines()
    assert shown[-1] == f"(exit status {result.returncode})"
    printed = [json.loads(line) for line in (result.stdout + result.stderr).splitlines()
               if line.strip()]
    documented = [json.loads(line) for line in shown[:-1]]
    # Every line is one JSON object; the times differ, nothing else.
    assert [{**entry, "ts": "..."} for entry in printed] == documented


def test_systemd_md_trial_with_a_secret_key_serves_as_the_page_says(tmp_path):
    port = free_port()
    upstream = f"http://127.0.0.1:{free_port()}"  # nothing listens: "cannot be reached"
    env = env_file(tmp_path, port, SECRET_KEY=secrets.token_urlsafe(48),
                   CHATCAPTAIN_BASE_URL=upstream, SESSION_STORE_URL=None)
    with (tmp_path / "log").open("wb") as log:
        # Its own process group: the shell does not pass SIGTERM on to the gunicorn it
        # started, which outlived every run (bound to the port, answering the next one).
        process = subprocess.Popen(["sh", "-c", trial_command(env)], env=clean_environment(),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_server(url + "/healthz", process, log=tmp_path / "log")
        assert requests.get(url + "/healthz", timeout=10).json() == {"status": "ok"}
        ready = requests.get(url + "/readyz", timeout=10)
        assert (ready.status_code, ready.json()) == (200, {"status": "degraded"})
        assert (tmp_path / "instance" / "sessions.sqlite3").exists()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    page = SYSTEMD.read_text()
    assert "`/readyz` 200 `degraded`" in page
