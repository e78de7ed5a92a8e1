"""The Flask app: create_app builds it from the settings, widgets and collaborators."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import HOME, SETTINGS_CHECKED, themes, upstream
from .chatcaptain.client import ChatCaptainClient
from .clock import Clock, get_clock
from .clock import init_app as init_clock
from .current import init_app as init_current_widget
from .ops import health, logs, metrics, proxy_hint
from .rendering import register_template_helpers
from .sessions import SessionStoreUnavailable, init_sessions
from .settings import Settings, SettingsError, load_settings, lookalike_warnings
from .shared import Shared, SharedStateUnavailable, open_shared
from .shared.open import EXTENSION as SHARED_EXTENSION
from .web import (
    assets,
    embedding,
    i18n,
    limits,
    overrides,
    security,
    theming,
    transcript,
    views,
    visitor,
)
from .web.errors import register_error_pages
from .widgets import WidgetConfig, check_local_avatars, widgets_from_settings

if TYPE_CHECKING:  # imported when demo mode starts it: it brings the sandbox
    from .web.demo import DemoUpstream

log = logging.getLogger("webwidget")


def create_app(
    test_config: Mapping[str, object] | None = None,
    *,
    settings: Settings | None = None,
    instance_path: str | None = None,
    clock: Clock | None = None,
) -> Flask:
    """Build the app: settings, upstream client, sessions, views; nothing runs at import.

    `clock` replaces the wall clock (tests move time with it instead of sleeping). The
    order matters where a comment says why.
    """
    settings = settings or load_settings()
    # JSON log lines from the first one on (the demo's line comes before the secrets to
    # redact are known, and holds none of them).
    logs.install_handler()
    app = flask_app(settings, instance_path, test_config)
    demo = demo_upstream(app, settings)
    init_clock(app, clock)
    widgets = app.extensions["webwidget.widgets"] = widgets_from_settings(settings, demo=demo)
    init_current_widget(app)
    warn_about_settings(settings, widgets)
    # First hooks registered: the request id exists before anything else logs.
    logs.init_app(app, secrets=_known_secrets(settings, widgets))
    client = upstream_client(app, settings, demo)
    shared = shared_state_and_sessions(app, settings, secret_keys(app, settings, demo))
    security.init_app(app)
    i18n.init_app(app, settings.WIDGET_TEMPLATE_DIR)
    theming.init_app(app)
    check_local_avatars(app, widgets)
    themes.init_app(app)
    metrics.init_app(app)
    metrics.count_store_errors(app)
    health.init_app(app)
    proxy_hint.init_app(app)
    register_template_helpers(app)
    visitor.init_app(app, settings, shared, client)
    assets.init_app(app)
    limits.init_app(app, settings, shared)
    for blueprint in (views.bp, embedding.bp, transcript.bp):
        app.register_blueprint(blueprint)
    register_error_pages(app)
    return app


def flask_app(
    settings: Settings, instance_path: str | None, test_config: Mapping[str, object] | None
) -> Flask:
    """The Flask object: our templates and static files, a private instance folder, the
    owner's template overrides, the request size limits, ProxyFix for trusted proxies."""
    if not (HOME / "templates").is_dir():
        raise SettingsError(
            f"WEBWIDGET_HOME: no templates/ under {HOME}; unset it to use the installed"
            " package's, or point it at a webwidget checkout"
        )
    app = assets.AssetServingFlask(
        # The package's name: Flask names the instance folder after it (<prefix>/var/
        # webwidget-instance for an installed package) and finds the root path by it.
        "webwidget",
        template_folder=str(HOME / "templates"),
        static_folder=str(HOME / "static"),
        instance_relative_config=True,
        instance_path=instance_path or os.environ.get("WEBWIDGET_INSTANCE_PATH") or None,
    )
    try:
        private_folder(Path(app.instance_path))
    except OSError as exc:
        raise SettingsError(
            f"WEBWIDGET_INSTANCE_PATH: cannot create {app.instance_path} ({exc.strerror});"
            " point it at a folder this user can write"
        ) from None
    # Before anything creates the Jinja environment: owners' templates shadow ours.
    overrides.init_app(app, settings.WIDGET_TEMPLATE_DIR)
    app.config.from_mapping(
        WEBWIDGET_SETTINGS=settings,
        # Room for the longest message the composer allows: 2000 characters of a
        # three-byte script (CJK) are 18,000 bytes once form-encoded.
        MAX_CONTENT_LENGTH=32 * 1024,
        MAX_FORM_MEMORY_SIZE=32 * 1024,
    )
    if test_config:
        app.config.from_mapping(test_config)
    if settings.TRUSTED_PROXY_HOPS:
        # Only configured proxies may say who the client is and whether it used https.
        hops = settings.TRUSTED_PROXY_HOPS
        # Flask's documented way to add WSGI middleware; mypy sees a method replaced.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    return app


def demo_upstream(app: Flask, settings: Settings) -> DemoUpstream | None:
    """In demo mode, the bundled sandbox started as the upstream (None otherwise)."""
    if not settings.demo_mode:
        return None
    from .web import demo as demo_mode

    demo = demo_mode.start_demo_upstream(app.instance_path)
    app.config["WEBWIDGET_MEDIA_ORIGINS"] = (demo.url,)
    demo_mode.init_app(app, demo)
    return demo


def secret_keys(app: Flask, settings: Settings, demo: DemoUpstream | None) -> list[str]:
    """The key that signs session handles, then the fallbacks that still verify them (the
    demo makes one up and keeps it in the instance folder when none is set)."""
    if settings.SECRET_KEY:
        key = settings.SECRET_KEY.get_secret_value()
    else:
        assert demo is not None  # outside demo mode the settings require a key
        from .web.demo import demo_secret_key

        key = demo_secret_key(app.instance_path)
    return [key, *(fallback.get_secret_value() for fallback in settings.SECRET_KEY_FALLBACKS)]


def warn_about_settings(settings: Settings, widgets: Mapping[str, WidgetConfig]) -> None:
    """Log misspelt settings (unless gunicorn's master did already) and owners' templates
    that shadow ours."""
    if not os.environ.get(SETTINGS_CHECKED):
        for line in settings_warnings(widgets):
            log.warning("%s", line)
    overrides.warn_about_overrides(widgets, settings.WIDGET_TEMPLATE_DIR, HOME / "templates")


def upstream_client(
    app: Flask, settings: Settings, demo: DemoUpstream | None
) -> upstream.GuardedClient:
    """The ChatCaptain client (the demo's sandbox in demo mode) behind the app's breaker,
    observed by metrics and health."""
    base_url = demo.url if demo else settings.CHATCAPTAIN_BASE_URL
    assert base_url is not None  # outside demo mode the settings refuse to load without it
    api_key = settings.CHATCAPTAIN_API_KEY
    return upstream.init_app(
        app,
        ChatCaptainClient(
            base_url,
            api_key=api_key.get_secret_value() if api_key else None,
            connect_timeout=settings.UPSTREAM_CONNECT_TIMEOUT,
            read_timeout=settings.UPSTREAM_READ_TIMEOUT,
            deadline=settings.UPSTREAM_DEADLINE,
            sending_enabled=bool(demo) or settings.CHATCAPTAIN_SENDING_ENABLED,
            # Room for every background refresh plus the request threads' own calls, so
            # no connection is opened per call and thrown away when the pool is full.
            pool_maxsize=settings.UPSTREAM_REFRESH_CALLS + 32,
            max_list_bytes=settings.UPSTREAM_MAX_LIST_BYTES,
        ),
        observers=(metrics.upstream_observer(app), health.upstream_observer(app)),
        on_state=metrics.circuit_observer(app),
        skipped=metrics.skipped_call_counter(app),
    )


def shared_state_and_sessions(app: Flask, settings: Settings, keys: list[str]) -> Shared:
    """Open the state every worker and instance shares (one decision: Redis or SQLite) and
    keep the sessions in it; a SQLite file that cannot be opened stops the start."""
    try:
        shared = app.extensions[SHARED_EXTENSION] = open_shared(settings, app.instance_path)
        init_sessions(
            app,
            shared=shared,
            secret_keys=keys,
            idle_timeout=settings.SESSION_IDLE_TIMEOUT,
            absolute_timeout=settings.SESSION_ABSOLUTE_TIMEOUT,
            scope_of=security.session_scope,
            clock=get_clock(app),
            # Static files never open a session (nor write one).
            skip_prefix=f"{app.static_url_path}/",
        )
    except (SharedStateUnavailable, SessionStoreUnavailable) as exc:
        # Only SQLite opens its file at start-up (Redis connects on first use).
        raise SettingsError(
            f"SESSION_STORE_URL: the SQLite session store cannot be opened ({exc}); use a "
            "writable path, or set WEBWIDGET_INSTANCE_PATH to a writable folder"
        ) from None
    return shared


def private_folder(path: Path) -> None:
    """Create the instance folder 0700: it holds the session database and the demo's key.
    One that others may enter (an older release made it 0755) loses their access."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = path.stat().st_mode
    if mode & 0o007:
        try:
            path.chmod(mode & 0o770)
        except PermissionError:  # not ours: say so rather than fail
            log.warning("the instance folder %s is open to every local user; chmod o-rwx it",
                        path)


def settings_warnings(widgets: Mapping[str, object]) -> list[str]:
    """Variables that look like ours but are ignored (misspelt names), one line each."""
    tokens = {
        token.get_secret_value()
        for widget in widgets.values()
        if (token := getattr(widget, "channel_token", None)) is not None
    }
    # A widgets file names its own token variables (channel_token_env): those are read.
    token_variables = {name for name, value in os.environ.items() if value and value in tokens}
    return lookalike_warnings(os.environ, token_variables)


def _known_secrets(settings: Settings, widgets: Mapping[str, object]) -> list[str]:
    """Every configured secret value, for the log filter to redact."""
    values = [settings.SECRET_KEY, settings.CHATCAPTAIN_API_KEY, *settings.SECRET_KEY_FALLBACKS]
    values.append(settings.METRICS_TOKEN)
    values += [getattr(widget, "channel_token", None) for widget in widgets.values()]
    return [value.get_secret_value() for value in values if value is not None]
