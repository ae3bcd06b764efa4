"""One Settings object, read from the environment (LOCKSTEP_*)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = f"sqlite:///{ROOT / 'data' / 'lockstep.db'}"
DEFAULT_PLAN_DIR = ROOT / "plan"


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

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from the environment; raise ValueError naming a bad variable."""
        env = dict(os.environ if env is None else env)
        kwargs: dict[str, object] = {}
        if url := env.get("LOCKSTEP_DATABASE_URL"):
            kwargs["database_url"] = url
        if plan_dir := env.get("LOCKSTEP_PLAN_DIR"):
            kwargs["plan_dir"] = Path(plan_dir)
        if as_of := env.get("LOCKSTEP_AS_OF"):
            try:
                kwargs["as_of"] = date.fromisoformat(as_of)
            except ValueError:
                raise ValueError(f"LOCKSTEP_AS_OF={as_of!r} is not a date (YYYY-MM-DD)") from None
        for name, field in (
            ("LOCKSTEP_CACHE_TTL", "cache_ttl_seconds"),
            ("LOCKSTEP_SHARE_LINK_DAYS", "share_link_days"),
        ):
            if raw := env.get(name):
                try:
                    kwargs[field] = int(raw)
                except ValueError:
                    raise ValueError(f"{name}={raw!r} is not a whole number") from None
        if environment := env.get("LOCKSTEP_ENV"):
            kwargs["environment"] = environment
        if public_url := env.get("LOCKSTEP_PUBLIC_URL"):
            if not public_url.startswith(("http://", "https://")):
                raise ValueError(f"LOCKSTEP_PUBLIC_URL={public_url!r} must start with http:// or https://")
            kwargs["public_url"] = public_url.rstrip("/")
        kwargs.update(_smtp_settings(env))
        return cls(**kwargs)


def _smtp_settings(env: dict[str, str]) -> dict[str, object]:
    """The LOCKSTEP_SMTP_* variables as Settings fields; ValueError names a bad one."""
    out: dict[str, object] = {}
    for name in ("host", "user", "password", "from"):
        if value := env.get(f"LOCKSTEP_SMTP_{name.upper()}"):
            out[f"smtp_{name}"] = value
    if port := env.get("LOCKSTEP_SMTP_PORT"):
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"LOCKSTEP_SMTP_PORT={port!r} is not a port number (1-65535)")
        out["smtp_port"] = int(port)
    if tls := env.get("LOCKSTEP_SMTP_STARTTLS"):
        if tls.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"LOCKSTEP_SMTP_STARTTLS={tls!r}: use 1 or 0")
        out["smtp_starttls"] = tls.lower() in ("1", "true", "yes")
    return out


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings.from_env()
