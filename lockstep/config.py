"""One Settings object, read from the environment (LOCKSTEP_*), every value checked at start.

A bad value is refused with a SettingsError naming the variable, what it holds and what it
may hold (README, "Configuration"), before any page or command uses it: the CLI exits 2
with that message, and every page shows it instead of a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = f"sqlite:///{ROOT / 'data' / 'lockstep.db'}"
DEFAULT_PLAN_DIR = ROOT / "plan"

# Ranges of the numeric settings: (lowest, highest, unit).
CACHE_TTL_RANGE = (1, 86_400, "seconds")
SHARE_LINK_DAYS_RANGE = (1, 90, "days")  # lockstep.services.share_links.MAX_DAYS is the top
SESSION_IDLE_HOURS_RANGE = (1, 720, "hours")
SESSION_DAYS_RANGE = (1, 90, "days")
AS_OF_RANGE = (date(2000, 1, 1), date(2100, 12, 31))
ENVIRONMENTS = ("production", "development", "test")  # test: the test suite's servers
AUDIT_KEY_MIN_CHARS = 32
DEFAULT_AUDIT_KEY_FILE = ROOT / "data" / "audit.key"


class SettingsError(ValueError):
    """A LOCKSTEP_* variable holds a value Lockstep cannot use; the message names it and its range."""


@dataclass(frozen=True)
class Settings:
    """Runtime settings; every field comes from a LOCKSTEP_* variable or its default."""

    database_url: str = DEFAULT_DATABASE_URL
    plan_dir: Path = DEFAULT_PLAN_DIR
    # The dashboard's "today". Unset: the real date, capped to the program's end so a
    # finished program reads as finished rather than as hundreds of days overdue.
    as_of: date | None = None
    cache_ttl_seconds: int = 60
    share_link_days: int = 14
    environment: str = "production"
    # Where customers reach the app; share links are built on it.
    public_url: str = "http://127.0.0.1:8501"
    # Outgoing mail for `deliver` (lockstep/mail.py). No host: delivery refuses with a message.
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = ""
    smtp_starttls: bool = False
    # The key of the audit log's MACs (LOCKSTEP_AUDIT_KEY or LOCKSTEP_AUDIT_KEY_FILE); kept out of repr.
    audit_key: bytes | None = field(default=None, repr=False)
    # A signed-in browser's server-side session ends after this long without a page run...
    session_idle_hours: int = 8
    # ...and this long after sign-in, however busy.
    session_days: int = 7

    @property
    def secure_cookies(self) -> bool:
        """True when the public address is https: cookies then carry the Secure flag."""
        return self.public_url.startswith("https://")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from the environment; raise SettingsError naming a bad variable and its range."""
        env = dict(os.environ if env is None else env)
        kwargs: dict[str, object] = {}
        if url := env.get("LOCKSTEP_DATABASE_URL"):
            kwargs["database_url"] = _database_url(url)
        if plan_dir := env.get("LOCKSTEP_PLAN_DIR"):
            kwargs["plan_dir"] = Path(plan_dir)
        if as_of := env.get("LOCKSTEP_AS_OF"):
            kwargs["as_of"] = _as_of(as_of)
        for name, attr, bounds in (
            ("LOCKSTEP_CACHE_TTL", "cache_ttl_seconds", CACHE_TTL_RANGE),
            ("LOCKSTEP_SHARE_LINK_DAYS", "share_link_days", SHARE_LINK_DAYS_RANGE),
            ("LOCKSTEP_SESSION_IDLE_HOURS", "session_idle_hours", SESSION_IDLE_HOURS_RANGE),
            ("LOCKSTEP_SESSION_DAYS", "session_days", SESSION_DAYS_RANGE),
        ):
            if (raw := env.get(name)) is not None and raw.strip():
                kwargs[attr] = _whole_number(name, raw, bounds)
        if environment := env.get("LOCKSTEP_ENV"):
            if environment.strip() not in ENVIRONMENTS:
                raise SettingsError(
                    f"LOCKSTEP_ENV={environment!r} is not one of {', '.join(ENVIRONMENTS)}"
                )
            kwargs["environment"] = environment.strip()
        if public_url := env.get("LOCKSTEP_PUBLIC_URL"):
            kwargs["public_url"] = _public_url(public_url)
        kwargs.update(_smtp_settings(env))
        kwargs["audit_key"] = _audit_key(env)
        return cls(**kwargs)


def _smtp_settings(env: dict[str, str]) -> dict[str, object]:
    """The LOCKSTEP_SMTP_* variables as Settings fields; SettingsError names a bad one."""
    out: dict[str, object] = {}
    for name in ("host", "user", "password", "from"):
        if value := env.get(f"LOCKSTEP_SMTP_{name.upper()}"):
            out[f"smtp_{name}"] = value
    if port := env.get("LOCKSTEP_SMTP_PORT"):
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"LOCKSTEP_SMTP_PORT={port!r} is not a port number (1-65535)")
        out["smtp_port"] = int(port)
    if tls := env.get("LOCKSTEP_SMTP_STARTTLS"):
        if tls.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise SettingsError(f"LOCKSTEP_SMTP_STARTTLS={tls!r}: use 1 or 0")
        out["smtp_starttls"] = tls.lower() in ("1", "true", "yes")
    return out


def _whole_number(name: str, raw: str, bounds: tuple[int, int, str]) -> int:
    low, high, unit = bounds
    wanted = f"a whole number of {unit} from {low:,} to {high:,}"
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number: it must be {wanted}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={raw!r} is out of range: it must be {wanted}")
    return value


def _as_of(raw: str) -> date:
    low, high = AS_OF_RANGE
    try:
        value = date.fromisoformat(raw.strip())
    except ValueError:
        raise SettingsError(f"LOCKSTEP_AS_OF={raw!r} is not a date (YYYY-MM-DD, e.g. 2020-06-30)") from None
    if not low <= value <= high:
        raise SettingsError(f"LOCKSTEP_AS_OF={raw!r} is out of range: it must be a date from {low} to {high}")
    return value


def _database_url(raw: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(raw).get_backend_name()
    except ArgumentError:
        backend = None
    if backend not in ("sqlite", "postgresql"):
        # The URL may hold a password: name the variable, not its value.
        raise SettingsError(
            "LOCKSTEP_DATABASE_URL is not a SQLite or PostgreSQL database URL "
            "(e.g. sqlite:///data/lockstep.db or postgresql+psycopg://user@host:5432/db)"
        )
    return raw


def _public_url(raw: str) -> str:
    from urllib.parse import urlsplit

    value = raw.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise SettingsError(
            f"LOCKSTEP_PUBLIC_URL={raw!r} must be an http:// or https:// address with a host "
            "(e.g. https://lockstep.example.com)"
        )
    return value.rstrip("/")


def _audit_key(env: dict[str, str]) -> bytes | None:
    key = env.get("LOCKSTEP_AUDIT_KEY")
    name = "LOCKSTEP_AUDIT_KEY"
    # With neither variable set, the key `make run` made is used, so a command run by hand
    # keys its entries like the app does. An empty LOCKSTEP_AUDIT_KEY_FILE means "no key file".
    path = env.get("LOCKSTEP_AUDIT_KEY_FILE")
    if path is None and DEFAULT_AUDIT_KEY_FILE.is_file():
        path = str(DEFAULT_AUDIT_KEY_FILE)
    if not key and path:
        name = f"LOCKSTEP_AUDIT_KEY_FILE={path!r}"
        try:
            key = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise SettingsError(f"{name}: cannot read the key file: {reason}") from None
    if not key:
        return None
    key = key.strip()
    if len(key) < AUDIT_KEY_MIN_CHARS:
        # Never echo the key itself.
        raise SettingsError(
            f"{name}: the audit key has {len(key)} characters; it must have at least {AUDIT_KEY_MIN_CHARS} "
            "(e.g. `python -c \"import secrets; print(secrets.token_hex(32))\"`)"
        )
    return key.encode("utf-8")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (a SettingsError is raised again on every call)."""
    return Settings.from_env()
