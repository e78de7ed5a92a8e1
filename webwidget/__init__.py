"""webwidget: a server-rendered ChatCaptain chat widget (Flask backend-for-frontend).

Importing the package imports nothing else: gunicorn's master imports it (its start-up
check and its access logger) before forking workers. Under the gevent worker, a master
that had imported requests or redis (which take names from ssl at import) would fork
workers whose HTTPS connections gevent can no longer patch (it warns so, in plain text,
in every worker). The app itself is in app.py (`from webwidget.app import create_app`).
"""

from __future__ import annotations

import os
from pathlib import Path


def find_home() -> Path:
    """The folder holding templates/ and static/: inside the installed package (the wheel
    maps them there at build time), else the checkout's top (an editable install)."""
    override = os.environ.get("WEBWIDGET_HOME")  # a checkout elsewhere, e.g. while developing
    if override:
        return Path(override)
    package = Path(__file__).resolve().parent
    return package if (package / "templates").is_dir() else package.parent


HOME = find_home()
# Set by gunicorn's master once its trial build has reported the settings' warnings.
SETTINGS_CHECKED = "WEBWIDGET_SETTINGS_CHECKED"

