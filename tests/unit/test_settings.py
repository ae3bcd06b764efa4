"""Settings: every LOCKSTEP_* variable is checked at start; a bad one is named with its range."""

from __future__ import annotations

from datetime import date

import pytest

from lockstep.config import Settings, SettingsError
from lockstep.services.share_links import MAX_DAYS


def test_defaults_and_good_values():
    assert Settings.from_env({}) == Settings()
    s = Settings.from_env({
        "LOCKSTEP_SHARE_LINK_DAYS": "90", "LOCKSTEP_CACHE_TTL": " 5 ", "LOCKSTEP_AS_OF": "2020-06-30",
        "LOCKSTEP_ENV": "development", "LOCKSTEP_PUBLIC_URL": "https://lockstep.example.com:8443/",
        "LOCKSTEP_DATABASE_URL": "postgresql+psycopg://app@db.internal:5432/lockstep",
    })
    assert (s.share_link_days, s.cache_ttl_seconds, s.as_of) == (90, 5, date(2020, 6, 30))
    assert s.public_url == "https://lockstep.example.com:8443"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("LOCKSTEP_SHARE_LINK_DAYS", "365", "LOCKSTEP_SHARE_LINK_DAYS='365' is out of range: it must be a "
         "whole number of days from 1 to 90"),
        ("LOCKSTEP_SHARE_LINK_DAYS", "0", "LOCKSTEP_SHARE_LINK_DAYS='0' is out of range"),
        ("LOCKSTEP_SHARE_LINK_DAYS", "abc",
         "LOCKSTEP_SHARE_LINK_DAYS='abc' is not a whole number: it must be a whole number of days "
         "from 1 to 90"),
        ("LOCKSTEP_CACHE_TTL", "-1", "LOCKSTEP_CACHE_TTL='-1' is out of range: it must be a whole number of "
         "seconds from 1 to 86,400"),
        ("LOCKSTEP_CACHE_TTL", "1e3", "LOCKSTEP_CACHE_TTL='1e3' is not a whole number"),
        ("LOCKSTEP_AS_OF", "30/06/2020", "LOCKSTEP_AS_OF='30/06/2020' is not a date (YYYY-MM-DD"),
        ("LOCKSTEP_AS_OF", "9999-12-31",
         "LOCKSTEP_AS_OF='9999-12-31' is out of range: it must be a date from 2000-01-01 to 2100-12-31"),
        ("LOCKSTEP_ENV", "prod", "LOCKSTEP_ENV='prod' is not one of production, development, test"),
        ("LOCKSTEP_PUBLIC_URL", "lockstep.example.com", "LOCKSTEP_PUBLIC_URL='lockstep.example.com' must be "
         "an http:// or https:// address"),
        ("LOCKSTEP_PUBLIC_URL", "https://", "LOCKSTEP_PUBLIC_URL='https://' must be"),
        ("LOCKSTEP_PUBLIC_URL", "http://host:99999", "LOCKSTEP_PUBLIC_URL='http://host:99999' must be"),
        ("LOCKSTEP_DATABASE_URL", "mysql://root:secret@db/x", "LOCKSTEP_DATABASE_URL is not a SQLite or "
         "PostgreSQL database URL"),
        ("LOCKSTEP_DATABASE_URL", "not a url", "LOCKSTEP_DATABASE_URL is not a SQLite"),
        ("LOCKSTEP_AUDIT_KEY", "short", "LOCKSTEP_AUDIT_KEY: the audit key has 5 characters; it must have "
         "at least 32"),
        ("LOCKSTEP_AUDIT_KEY_FILE", "/nonexistent/audit.key",
         "LOCKSTEP_AUDIT_KEY_FILE='/nonexistent/audit.key': cannot read the key file"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable_and_its_range(name, value, says):
    with pytest.raises(SettingsError) as err:
        Settings.from_env({name: value})
    assert says in str(err.value)


def test_secrets_are_never_echoed():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"LOCKSTEP_DATABASE_URL": "mysql://root:hunter2@db/x"})
    assert "hunter2" not in str(err.value)
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"LOCKSTEP_AUDIT_KEY": "tooshort-secret"})
    assert "tooshort-secret" not in str(err.value)
    key = "k" * 40
    assert key not in repr(Settings.from_env({"LOCKSTEP_AUDIT_KEY": key}))


def test_the_audit_key_comes_from_the_variable_or_a_file(tmp_path):
    path = tmp_path / "audit.key"
    path.write_text("f" * 64 + "\n")
    assert Settings.from_env({"LOCKSTEP_AUDIT_KEY_FILE": str(path)}).audit_key == b"f" * 64
    both = {"LOCKSTEP_AUDIT_KEY": "a" * 32, "LOCKSTEP_AUDIT_KEY_FILE": str(path)}
    assert Settings.from_env(both).audit_key == b"a" * 32
    assert Settings.from_env({}).audit_key is None


def test_the_share_link_range_is_the_services():
    from lockstep.config import SHARE_LINK_DAYS_RANGE

    assert SHARE_LINK_DAYS_RANGE[:2] == (1, MAX_DAYS)
