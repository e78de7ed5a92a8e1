"""Private files: the instance folder is its owner's alone (0700), and so are the session
database with its -wal and -shm files (0600) and the demo's signing key (0600): they
hold every visitor's widget token and the key that signs session handles."""

from __future__ import annotations

import stat
from pathlib import Path

from conftest import Visitor, https_client, make_app

from webwidget.app import create_app
from webwidget.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_instance_folder_and_session_database_are_private(sandbox, tmp_path):
    instance = tmp_path / "instance"
    app = make_app(sandbox, instance, store_url=f"sqlite:///{instance / 'sessions.sqlite3'}")
    Visitor(https_client(app)).start()  # a session written: the -wal file has data
    assert mode(instance) == 0o700
    files = [instance / name for name in ("sessions.sqlite3", "sessions.sqlite3-wal",
                                          "sessions.sqlite3-shm")]
    assert all(file.exists() for file in files)
    assert {file.name: mode(file) for file in files} == {file.name: 0o600 for file in files}


def test_files_an_older_release_left_open_are_tightened(sandbox, tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir(mode=0o755)
    instance.chmod(0o755)
    database = instance / "sessions.sqlite3"
    database.touch()
    database.chmod(0o644)
    make_app(sandbox, instance, store_url=f"sqlite:///{database}")
    assert mode(instance) == 0o750
    assert mode(database) == 0o600


def test_the_demo_secret_key_is_private(tmp_path):
    instance = tmp_path / "demo"
    create_app(settings=Settings(_env_file=None, WEBWIDGET_DEMO=True),
               instance_path=str(instance))
    assert mode(instance) == 0o700
    assert mode(instance / "demo-secret-key") == 0o600
    assert mode(instance / "sessions.sqlite3") == 0o600
