"""A plain install runs: the built wheel carries templates/ and static/, and the widget
runs from it in a fresh virtualenv, from another folder, without WEBWIDGET_HOME.

The wheel is built with the project's own backend and installed with pip, exactly as
`pip install .` does; only its dependencies come from this test run's environment
(a path entry, not a download), so the test needs no network.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import requests
from conftest import free_port, wait_for_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install .` would build from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(out), str(ROOT)],
        check=True, timeout=300,
    )
    (found,) = out.glob("webwidget-*.whl")
    return found


def test_the_wheel_carries_templates_and_static_inside_the_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("templates", "static"):
        in_checkout = {
            f"webwidget/{path.relative_to(ROOT).as_posix()}"
            for path in (ROOT / folder).rglob("*")
            if path.is_file()
        }
        assert in_checkout and in_checkout <= names, sorted(in_checkout - names)[:5]
    assert not any(name.startswith(("templates/", "static/", "tests/")) for name in names)


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel installed; its bin folder."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--quiet", str(wheel)],
        check=True, timeout=300,
    )
    # The dependencies, from this environment's site-packages as a plain path entry: its
    # .pth files (the editable install of this checkout among them) are not read.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    (Path(purelib) / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def clean_env(**extra: str) -> dict[str, str]:
    """No WEBWIDGET_*, CHATCAPTAIN_*, PYTHONPATH: nothing points back at the checkout."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WEBWIDGET_", "CHATCAPTAIN_", "SESSION_", "WIDGET_"))
        and key not in ("PYTHONPATH", "SECRET_KEY", "VIRTUAL_ENV")
    }
    return {**env, **extra}


def test_the_installed_package_is_not_the_checkout(installed, tmp_path):
    result = subprocess.run(
        [str(installed / "python"), "-c", "import webwidget; print(webwidget.HOME)"],
        cwd=tmp_path, env=clean_env(), check=True, capture_output=True, text=True,
    )
    home = Path(result.stdout.strip())
    assert installed.parent in home.parents and ROOT not in home.parents
    assert (home / "templates" / "base.html").is_file()


def test_webwidget_demo_runs_from_the_wheel_in_another_folder(installed, tmp_path):
    port = free_port()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(installed / "webwidget"), "demo", "--port", str(port)],
            cwd=elsewhere, env=clean_env(), stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url + "/w/default", proc, log=log)
        page = requests.get(url + "/w/default", timeout=5)
        assert page.status_code == 200
        assert 'role="log"' in page.text or 'method="post"' in page.text
        assert requests.get(url + "/", timeout=5).status_code == 200
        for asset in ("/embed.js", "/static/css/widget.css"):
            response = requests.get(url + asset, timeout=5)
            assert response.status_code == 200, asset
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # Flask's instance folder of an installed package: <venv>/var/webwidget-instance.
    assert (installed.parent / "var" / "webwidget-instance" / "sessions.sqlite3").is_file()
