"""What `db downgrade` would destroy, as each migration declares it (DOWNGRADE_DROPS_DATA)."""

from __future__ import annotations

from lockstep.migrate import NOT_DECLARED, downgrade_losses, head_revision, migration_scripts


def test_going_to_base_names_the_migration_that_drops_every_table():
    losses = downgrade_losses(head_revision(), "base")
    assert losses[-1].startswith("0001 (initial schema): drops every table")


def test_steps_that_drop_only_indexes_or_derived_tables_lose_nothing():
    assert downgrade_losses("0005", "0001") == []
    assert downgrade_losses("0004", "0003") == []


def test_a_database_never_migrated_has_nothing_to_lose():
    assert downgrade_losses(None, "base") == []


def test_a_migration_that_does_not_declare_is_taken_to_drop_data(monkeypatch):
    script = migration_scripts()
    module = script.get_revision("0005").module
    monkeypatch.delattr(module, "DOWNGRADE_DROPS_DATA")
    losses = downgrade_losses("0005", "0004")
    assert losses == [f"0005 ({script.get_revision('0005').doc.strip()}): {NOT_DECLARED}"]
