"""Fixtures shared by the data-layer tests (the engine fixtures live in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def cheap_hashing(monkeypatch):
    """Cheap argon2 parameters: the production cost (~0.25 s a hash) adds time, not coverage, here."""
    from argon2 import PasswordHasher

    from lockstep.services import auth, users

    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    auth._dummy_hash.cache_clear()
    yield
    auth._dummy_hash.cache_clear()
