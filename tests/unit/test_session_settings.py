"""Session settings: defaults, and bad values refused with the variable named."""

from __future__ import annotations

import re

import pytest

from lockstep.config import Settings
from lockstep.ui.web import safe_next


def test_defaults_are_eight_idle_hours_and_seven_days():
    settings = Settings.from_env({})
    assert (settings.session_idle_hours, settings.session_days) == (8, 7)
    assert not settings.secure_cookies


def test_https_public_url_means_secure_cookies():
    assert Settings.from_env({"LOCKSTEP_PUBLIC_URL": "https://lockstep.example.com"}).secure_cookies


@pytest.mark.parametrize("name, value, message", [
    ("LOCKSTEP_SESSION_IDLE_HOURS", "0", "LOCKSTEP_SESSION_IDLE_HOURS='0' is out of range: it must be a "
     "whole number of hours from 1 to 720"),
    ("LOCKSTEP_SESSION_IDLE_HOURS", "abc", "LOCKSTEP_SESSION_IDLE_HOURS='abc' is not a whole number"),
    ("LOCKSTEP_SESSION_DAYS", "365", "LOCKSTEP_SESSION_DAYS='365' is out of range: it must be a whole "
     "number of days from 1 to 90"),
])
def test_bad_values_name_the_variable(name, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Settings.from_env({name: value})


@pytest.mark.parametrize("value, expected", [
    ("/plan", "/plan"),
    ("/", "/"),
    (None, "/"),
    ("//evil.example/x", "/"),
    ("https://evil.example/", "/"),
    ("/plan?x=1", "/"),
    ("javascript:alert(1)", "/"),
])
def test_after_sign_in_only_a_plain_path_of_ours_is_followed(value, expected):
    assert safe_next(value) == expected
