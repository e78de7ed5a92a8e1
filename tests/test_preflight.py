"""Start-up errors: a bad setting stops every documented way of starting with one line
per setting (naming it and the fix), no traceback, a non-zero status, and under
gunicorn once, not once per worker."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, wait_for_server
from test_scale_out import instance_env

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def start(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run a start-up command that must end by itself; its combined output."""
    return subprocess.run(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=120,
    )


def bad_env(tmp_path: Path, **changes: str | None) -> dict[str, str]:
    """A production environment with some settings changed (None: removed)."""
    env = instance_env("https://api.example.invalid", f"sqlite:///{tmp_path / 's.sqlite3'}",
                       WEB_CONCURRENCY="2", PORT=str(free_port()),
                       WEBWIDGET_INSTANCE_PATH=str(tmp_path / "instance"))
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def messages(output: str) -> list[str]:
    """Each line's message: gunicorn writes JSON objects, `webwidget serve` plain lines."""
    return [json.loads(line)["message"] if line.startswith("{") else line
            for line in output.splitlines() if line.strip()]


GUNICORN = [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--no-control-socket", "wsgi:app"]
CLI = [str(BIN / "webwidget"), "serve", "--port", "0"]


@pytest.mark.parametrize("command", [GUNICORN, CLI], ids=["gunicorn", "webwidget-serve"])
def test_a_missing_secret_key_is_one_line_naming_it_and_the_fix(command, tmp_path):
    result = start(command, bad_env(tmp_path, SECRET_KEY=None))
    assert result.returncode == 2, result.stdout
    errors = [line for line in messages(result.stdout) if "cannot start" in line]
    assert errors == [
        "webwidget cannot start: SECRET_KEY: not set (required once CHATCAPTAIN_BASE_URL is"
        " set); set it to 32 or more random characters, e.g. the output of python3 -c"
        " 'import secrets; print(secrets.token_urlsafe(48))'"
    ], result.stdout
    assert "Traceback" not in result.stdout and "Value error" not in result.stdout
    # gunicorn never forked a worker for it.
    assert "Booting worker" not in result.stdout


@pytest.mark.parametrize("command", [GUNICORN, CLI], ids=["gunicorn", "webwidget-serve"])
def test_each_bad_setting_gets_its_own_line(command, tmp_path):
    env = bad_env(tmp_path, WIDGET_LANGUAGE="german", WIDGET_ALLOWED_ORIGINS="*",
                  SESSION_STORE_URL="postgres://db/widget")
    result = start(command, env)
    assert result.returncode == 2, result.stdout
    errors = sorted(line for line in messages(result.stdout) if "cannot start" in line)
    assert [line.split(": ")[1] for line in errors] == [
        "SESSION_STORE_URL", "WIDGET_ALLOWED_ORIGINS", "WIDGET_LANGUAGE"
    ], result.stdout
    assert "Traceback" not in result.stdout


def test_an_unwritable_session_store_names_the_setting(tmp_path):
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    env = bad_env(tmp_path, SESSION_STORE_URL=f"sqlite:///{blocked}/sessions.sqlite3")
    result = start(GUNICORN, env)
    assert result.returncode == 2, result.stdout
    errors = [line for line in messages(result.stdout) if "cannot start" in line]
    assert len(errors) == 1 and errors[0].startswith(
        "webwidget cannot start: SESSION_STORE_URL: the SQLite session store cannot be opened"
    ), result.stdout
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize("command", [GUNICORN, CLI], ids=["gunicorn", "webwidget-serve"])
@pytest.mark.parametrize("base_url", [None, ""], ids=["unset", "empty"])
def test_no_upstream_is_one_line_and_never_the_demo(command, base_url, tmp_path):
    env = bad_env(tmp_path, CHATCAPTAIN_BASE_URL=base_url, CHATCAPTAIN_BASEURL="https://x.example")
    result = start(command, env)
    assert result.returncode == 2, result.stdout
    errors = [line for line in messages(result.stdout) if "cannot start" in line]
    assert errors == [
        "webwidget cannot start: CHATCAPTAIN_BASE_URL: not set (CHATCAPTAIN_BASEURL is set:"
        " misspelt?); set it to the ChatCaptain API root, e.g. https://api.chatcaptain.com"
        " (for the demo on the bundled sandbox run `webwidget demo`, or set WEBWIDGET_DEMO=1)"
    ], result.stdout
    assert "Traceback" not in result.stdout and "Booting worker" not in result.stdout
    assert "sandbox" not in result.stdout.replace("bundled sandbox run", "")
    # No sandbox state was ever made in the instance folder.
    assert not (tmp_path / "instance" / "sandbox.sqlite3").exists()


def test_gunicorn_warns_once_about_a_lookalike_variable_in_a_json_line(tmp_path):
    env = bad_env(tmp_path, SESION_STORE_URL="redis://127.0.0.1:1/0")
    instance = subprocess.Popen(
        GUNICORN, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for_server(f"http://127.0.0.1:{env['PORT']}/healthz", instance, timeout=60)
    finally:
        instance.send_signal(signal.SIGTERM)
        output = instance.communicate(timeout=60)[0]
    warnings = [line for line in output.splitlines() if "SESION_STORE_URL" in line]
    assert len(warnings) == 1, output
    entry = json.loads(warnings[0])
    assert entry["level"] == "WARNING"
    assert entry["message"] == (
        "SESION_STORE_URL is set but webwidget reads no such variable, so it is ignored;"
        " did you mean SESSION_STORE_URL?"
    )
    assert output.count("Booting worker") == 2  # two workers, and still the one warning


def test_under_gunicorn_a_failed_start_is_json_lines_too(tmp_path):
    env = bad_env(tmp_path, WIDGET_ALLOWED_ORIGINS="*", WIDGET_LANGUAGE="german")
    result = start(GUNICORN, env)
    assert result.returncode == 2, result.stdout
    entries = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    failed = [entry for entry in entries if "cannot start" in entry["message"]]
    assert [entry["level"] for entry in failed] == ["CRITICAL", "CRITICAL"]
