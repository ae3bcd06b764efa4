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
        return cls(**kwargs)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings.from_env()
