"""Settings from the environment (and a `.env` file), validated once at start-up."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LANGUAGE_CODE = re.compile(r"^[A-Za-z]{2}$")


# What to do about a required setting that is missing in production.
MISSING_FIXES = {
    "SECRET_KEY": "set it to 32 or more random characters, e.g. the output of "
    "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'",
    "CHATCAPTAIN_CHATBOT_ID": "set it to the chatbot id from ChatCaptain "
    "(or list widgets in WIDGETS_FILE)",
    "CHATCAPTAIN_CHANNEL_ID": "set it to the widget channel's id from ChatCaptain",
    "CHATCAPTAIN_CHANNEL_TOKEN": "set it to the widget channel's token from ChatCaptain",
    "WIDGET_ALLOWED_ORIGINS": "list the sites that embed the widget, e.g. https://www.example.com",
}

# Turns the bundled sandbox on when CHATCAPTAIN_BASE_URL is unset (`webwidget demo` sets it).
DEMO_VARIABLE = "WEBWIDGET_DEMO"
BASE_URL_FIX = (
    "set it to the ChatCaptain API root, e.g. https://api.chatcaptain.com (for the demo on"
    " the bundled sandbox run `webwidget demo`, or set WEBWIDGET_DEMO=1)"
)
# Variables read outside Settings (gunicorn.conf.py, the app factory, prometheus-client):
# a close misspelling of these is worth a warning too.
OTHER_VARIABLES = (
    "WEBWIDGET_INSTANCE_PATH",
    "WEBWIDGET_HOME",
    "PROMETHEUS_MULTIPROC_DIR",
    "WEB_CONCURRENCY",
    "PORT",
    "GUNICORN_WORKER_CLASS",
    "GUNICORN_THREADS",
    "GUNICORN_GRACEFUL_TIMEOUT",
    "GUNICORN_WORKER_CONNECTIONS",
    "WEBWIDGET_METRICS_DIR_OF",
    "WEBWIDGET_SETTINGS_CHECKED",
)
# Only our own families are warned about by prefix; anything else must be a near miss of
# a name we read (SESION_STORE_URL), so the rest of the environment stays quiet.
OUR_PREFIXES = ("CHATCAPTAIN_", "WEBWIDGET_")
LOOKALIKE_RATIO = 0.85

# Headers older messages put before their "NAME: why" lines; the lines alone are kept.
class SettingsError(RuntimeError):
    """Settings that are missing or malformed: one line each, naming it and the fix.

    The messages are the problems alone; `report` says that webwidget cannot start."""

    def __init__(self, *messages: str) -> None:
        self.problems = [
            line.strip() for message in messages for line in str(message).splitlines()
            if line.strip()
        ]
        super().__init__("\n".join(self.problems))

    def report(self) -> str:
        """What start-up prints: one line per problem, nothing else."""
        return "\n".join(f"webwidget cannot start: {problem}" for problem in self.problems)


def parse_origin(value: str) -> str:
    """Normalise one `scheme://host[:port]` origin or raise ValueError saying why."""
    value = value.strip().rstrip("/")
    if value == "*" or "*" in value:
        raise ValueError("'*' is not allowed: list each origin that may embed the widget")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an origin like https://www.example.com")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{value!r} must be scheme://host[:port] with nothing after it")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{value!r} has a bad port") from exc
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def split_list(value: object) -> list[str]:
    """Comma-separated text (or a list) to a list of non-empty stripped items."""
    if value is None:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, Iterable):
        raise TypeError(f"expected text or a list, got {type(value).__name__}")
    return [str(item).strip() for item in value if str(item).strip()]


class Settings(BaseSettings):
    """Every setting of the widget, by the names the README's Configuration section gives."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=True)

    # Without CHATCAPTAIN_BASE_URL: run on the bundled sandbox (True) or refuse to start.
    WEBWIDGET_DEMO: bool = False

    SECRET_KEY: SecretStr | None = None
    # Older keys that still verify session handles, so a key can be rotated without logouts.
    SECRET_KEY_FALLBACKS: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    CHATCAPTAIN_BASE_URL: str | None = None
    CHATCAPTAIN_API_KEY: SecretStr | None = None
    CHATCAPTAIN_CHATBOT_ID: str | None = None
    CHATCAPTAIN_CHANNEL_ID: str | None = None
    CHATCAPTAIN_CHANNEL_TOKEN: SecretStr | None = None
    # The published widget API cannot post a visitor's message; only an upstream that
    # offers the sandbox's extension can, so the composer is off unless this says so.
    CHATCAPTAIN_SENDING_ENABLED: bool = False

    WIDGET_ALLOWED_ORIGINS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    WIDGET_LANGUAGE: str = "EN"
    WIDGET_TITLE: str = "Chat with us"
    WIDGET_POLL_SECONDS: float = Field(default=3.0, ge=0.5, le=60)
    # How many of a conversation's newest messages are read, kept and shown; older ones
    # come with "Show earlier messages", so a long chat costs what a short one does.
    WIDGET_MESSAGES_SHOWN: int = Field(default=200, ge=10, le=5000)
    # Held polls (polling.py): how long the server holds a poll until the conversation
    # changes (0: short polls only; keep it below the proxy's read timeout), and how many
    # it holds at once per process (beyond that, pages poll short until their next change;
    # unset: 4000 under gevent's cooperative worker, 8 where each held poll is a thread).
    WIDGET_HOLD_SECONDS: float = Field(default=20.0, ge=0, le=55)
    WIDGET_HOLD_MAX: int | None = Field(default=None, ge=0)
    # The `default` widget's theme (docs/theming.md); other widgets set theirs in WIDGETS_FILE.
    WIDGET_PRIMARY_COLOR: str | None = None
    WIDGET_ON_PRIMARY_COLOR: str | None = None
    WIDGET_PRIMARY_COLOR_DARK: str | None = None
    WIDGET_POSITION: str | None = None
    WIDGET_SUBTITLE: str | None = None
    WIDGET_AVATAR: str | None = None
    WIDGET_GREETING: str | None = None
    WIDGET_FONT: str | None = None
    WIDGET_RADIUS: int | None = None
    WIDGET_THEME_MODE: str | None = None
    # The loader's panel (corner radius in px; shadow none/soft/strong) and the owner's CSS file.
    WIDGET_PANEL_RADIUS: int | None = None
    WIDGET_PANEL_SHADOW: str | None = None
    WIDGET_STYLESHEET: str | None = None
    # A TOML file listing several widgets (webwidget/widgets.py), and a folder of templates
    # overriding the built-in ones for every widget.
    WIDGETS_FILE: str | None = None
    WIDGET_TEMPLATE_DIR: str | None = None

    SESSION_STORE_URL: str | None = None
    # PaaS Redis add-ons (Heroku, Render, Railway, ...) set REDIS_URL: with SESSION_STORE_URL
    # unset it holds the sessions, and so the rate limits and shared caches too.
    REDIS_URL: str | None = None
    SESSION_IDLE_TIMEOUT: int = Field(default=12 * 3600, ge=60)
    SESSION_ABSOLUTE_TIMEOUT: int = Field(default=7 * 24 * 3600, ge=60)

    # Abuse limits (limits syntax, ';' between several): starting a chat creates a contact
    # and a conversation upstream, so it is limited per client, per network and per widget.
    RATE_LIMIT_ENABLED: bool = True
    RATE_LIMIT_START_PER_IP: str = "10/minute;100/hour"
    # An IPv6 client is its network of this prefix: one host routinely holds a whole /64.
    RATE_LIMIT_IPV6_PREFIX: int = Field(default=64, ge=32, le=128)
    # Per /24 (IPv4) or /48 (IPv6): far below the widget's ceiling, so that no one network
    # can use all of it up and lock every other visitor out.
    RATE_LIMIT_START_PER_NETWORK: str = "30/minute;300/hour"
    RATE_LIMIT_START_PER_WIDGET: str = "600/minute"
    RATE_LIMIT_SEND_PER_SESSION: str = "30/minute"
    # memory:// (one process) or redis://; unset: the session store's Redis, else memory.
    RATE_LIMIT_STORAGE_URL: str | None = None
    # How many reverse proxies in front set X-Forwarded-For/-Proto; 0 trusts none of them.
    TRUSTED_PROXY_HOPS: int = Field(default=0, ge=0, le=5)

    # The origin visitors reach us at (https://chat.example.com). When set it is our origin
    # for CSRF checks and originUrl, and requests for any other Host are refused.
    PUBLIC_URL: str | None = None

    @field_validator("PUBLIC_URL", mode="before")
    @classmethod
    def _public_url(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return parse_origin(str(value))

    # Bearer token Prometheus sends to scrape /metrics in production; unset: no /metrics.
    METRICS_TOKEN: SecretStr | None = None

    @field_validator("METRICS_TOKEN", mode="before")
    @classmethod
    def _metrics_token(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str) and len(value.strip()) < 16:
            raise ValueError("use at least 16 characters of random text")
        return value.strip() if isinstance(value, str) else value

    UPSTREAM_CONNECT_TIMEOUT: float = Field(default=2.0, gt=0)
    UPSTREAM_READ_TIMEOUT: float = Field(default=5.0, gt=0)
    UPSTREAM_DEADLINE: float = Field(default=8.0, gt=0)
    # Circuit breaker: after this many upstream failures in a row, fail fast for
    # UPSTREAM_BREAKER_RESET_SECONDS, then let one probe through (every other call still
    # fails fast while it runs). One second: each worker's breaker closes within about
    # a second of ChatCaptain's return (15 s left it open up to 15 s after), and a down
    # ChatCaptain gets at most one call per worker per second.
    UPSTREAM_BREAKER_FAIL_MAX: int = Field(default=5, ge=1)
    UPSTREAM_BREAKER_RESET_SECONDS: float = Field(default=1.0, gt=0)
    # Polls answer from the cached list and refresh it in the background, with at most
    # this many upstream calls at once per worker process; 0: polls wait on the upstream.
    UPSTREAM_REFRESH_CALLS: int = Field(default=32, ge=0, le=1024)
    # A worker process with this many upstream calls in flight is busy: idle held polls
    # skip their checks until it is not (call_slots.py); 0: they never do.
    UPSTREAM_CALLS_BUSY: int = Field(default=48, ge=0, le=4096)
    # The largest message list read from ChatCaptain (bytes); a larger one fails for that
    # conversation alone.
    UPSTREAM_MAX_LIST_BYTES: int = Field(default=32 * 1024 * 1024, ge=1024 * 1024)

    @field_validator("SECRET_KEY_FALLBACKS", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> list[str]:
        return split_list(value)

    @field_validator("WIDGET_ALLOWED_ORIGINS", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> list[str]:
        return [parse_origin(item) for item in split_list(value)]

    @field_validator(
        "RATE_LIMIT_START_PER_IP",
        "RATE_LIMIT_START_PER_NETWORK",
        "RATE_LIMIT_START_PER_WIDGET",
        "RATE_LIMIT_SEND_PER_SESSION",
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        from limits import parse_many

        try:
            if parse_many(value):
                return value
        except ValueError:
            pass
        raise ValueError(f"{value!r} is not a rate limit like '10/minute;100/hour'")

    @field_validator("RATE_LIMIT_STORAGE_URL")
    @classmethod
    def _limit_storage(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("use memory:// or redis://host:port/db")
        return value.strip()

    @field_validator("WIDGET_LANGUAGE")
    @classmethod
    def _language_code(cls, value: str) -> str:
        if not LANGUAGE_CODE.match(value):
            raise ValueError("use a two-letter language code such as EN or DE")
        return value.upper()

    @field_validator("CHATCAPTAIN_BASE_URL")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("use the API root, e.g. https://api.chatcaptain.com")
        return value.strip().rstrip("/")

    @field_validator("SESSION_STORE_URL")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("sqlite:///", "redis://", "rediss://")):
            raise ValueError("use sqlite:///<path> or redis://host:port/db")
        return value.strip()

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.strip().startswith(("redis://", "rediss://")):
            raise ValueError("use redis://host:port/db or rediss://host:port/db")
        return value.strip()

    @model_validator(mode="after")
    def _sessions_on_paas_redis(self) -> Settings:
        if self.SESSION_STORE_URL is None and self.REDIS_URL:
            self.SESSION_STORE_URL = self.REDIS_URL
        return self

    @model_validator(mode="after")
    def _consistent_timeouts(self) -> Settings:
        problems = [
            f"{name}: {getattr(self, name):g} s is longer than UPSTREAM_DEADLINE"
            f" ({self.UPSTREAM_DEADLINE:g} s), which ends every call, retries included; make"
            " it shorter or raise the deadline"
            for name in ("UPSTREAM_CONNECT_TIMEOUT", "UPSTREAM_READ_TIMEOUT")
            if getattr(self, name) > self.UPSTREAM_DEADLINE
        ]
        if self.SESSION_IDLE_TIMEOUT > self.SESSION_ABSOLUTE_TIMEOUT:
            problems.append(
                f"SESSION_IDLE_TIMEOUT: {self.SESSION_IDLE_TIMEOUT} s is longer than"
                f" SESSION_ABSOLUTE_TIMEOUT ({self.SESSION_ABSOLUTE_TIMEOUT} s), which ends"
                " every session first; make it shorter"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _production_needs(self) -> Settings:
        if self.CHATCAPTAIN_BASE_URL is None:
            if self.WEBWIDGET_DEMO:
                return self
            # Alone: the other settings only matter once the upstream is known.
            near = lookalikes_of("CHATCAPTAIN_BASE_URL", os.environ)
            seen = f" ({', '.join(near)} is set: misspelt?)" if near else ""
            raise ValueError(f"CHATCAPTAIN_BASE_URL: not set{seen}; {BASE_URL_FIX}")
        # With a widgets file the environment's `default` widget is optional.
        single = not self.WIDGETS_FILE or self.CHATCAPTAIN_CHATBOT_ID
        missing = [
            name
            for name in (
                "SECRET_KEY",
                *(
                    (
                        "CHATCAPTAIN_CHATBOT_ID",
                        "CHATCAPTAIN_CHANNEL_ID",
                        "CHATCAPTAIN_CHANNEL_TOKEN",
                        "WIDGET_ALLOWED_ORIGINS",
                    )
                    if single
                    else ()
                ),
            )
            if not getattr(self, name)
        ]
        problems = [
            f"{name}: not set (required once CHATCAPTAIN_BASE_URL is set); {MISSING_FIXES[name]}"
            for name in missing
        ]
        if self.SECRET_KEY and len(self.SECRET_KEY.get_secret_value()) < 32:
            fix = MISSING_FIXES["SECRET_KEY"]
            problems.append(f"SECRET_KEY: shorter than 32 characters; {fix}")
        if problems:
            # One ValueError for the model; load_settings splits it back into its lines.
            raise ValueError("\n".join(problems))
        return self

    @property
    def demo_mode(self) -> bool:
        """Demo asked for and no upstream configured: run on the bundled sandbox."""
        return self.CHATCAPTAIN_BASE_URL is None and self.WEBWIDGET_DEMO


def known_variables() -> frozenset[str]:
    """Every environment variable webwidget reads by name."""
    return frozenset((*Settings.model_fields, *OTHER_VARIABLES))


def _closest(name: str, known: Iterable[str]) -> str | None:
    """The known name `name` most likely misspells, if any is that close."""
    candidates = [k for k in known if len(k) >= 8 or name.upper() == k]
    if name.upper() in candidates:
        return name.upper()  # settings are case-sensitive: chatcaptain_base_url is ignored
    found = difflib.get_close_matches(name, candidates, n=1, cutoff=LOOKALIKE_RATIO)
    return found[0] if found else None


def lookalikes_of(target: str, environ: Mapping[str, str]) -> list[str]:
    """Variables set in `environ` that look like a misspelling of `target`."""
    known = known_variables()
    return sorted(
        name for name in environ
        if name not in known and environ[name] and _closest(name, known) == target
    )


def lookalike_warnings(environ: Mapping[str, str], also_known: Iterable[str] = ()) -> list[str]:
    """One line per variable that looks like ours but is no name we read (it is ignored)."""
    known = known_variables() | set(also_known)
    lines = []
    for name in sorted(environ):
        if name in known:
            continue
        closest = _closest(name, known)
        if closest is None and not name.startswith(OUR_PREFIXES):
            continue
        hint = f"; did you mean {closest}?" if closest else ""
        lines.append(f"{name} is set but webwidget reads no such variable, so it is ignored{hint}")
    return lines


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings; SettingsError has one line per bad setting."""
    try:
        return Settings(**overrides)  # pydantic validates each value
    except ValidationError as exc:
        raise SettingsError(*(_problem(error) for error in exc.errors())) from None


def _problem(error: Mapping[str, Any]) -> str:
    """One pydantic error as "NAME: why", without pydantic's "Value error, " prefix."""
    cause = error.get("ctx", {}).get("error")
    why = str(cause) if error["type"] == "value_error" and cause is not None else error["msg"]
    name = ".".join(str(part) for part in error["loc"])
    # A model-level error (no loc) already names its settings, one per line.
    return f"{name}: {why}" if name else why
