"""The database commands (db current/check/downgrade/rebuild-state) and how driver errors end.

Every failure here must end with the documented exit code, a message naming the cause, and
no traceback: 4 for a read-only database, 5 for unreachable, not migrated or behind.
"""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine, text

from lockstep.config import ROOT
from lockstep.migrate import head_revision
from tests.conftest import PG_ADMIN_URL, new_database_url

EXAMPLES = ROOT / "data" / "examples"
PLAN = str(ROOT / "plan" / "90-day-plan.yaml")


def _tables(db) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _plain(result) -> None:
    assert "Traceback" not in result.stderr, result.stderr


def test_current_and_check_say_when_the_schema_is_behind(run):
    assert run("db", "upgrade", "0004").returncode == 0
    current = run("db", "current")
    assert current.returncode == 0
    assert "revision 0004" in current.stdout and f"needs {head_revision()}" in current.stdout
    check = run("db", "check")
    assert check.returncode == 5
    assert "revision 0004" in check.stderr and "db upgrade" in check.stderr
    _plain(check)
    assert run("db", "upgrade").returncode == 0
    ok = run("db", "check")
    assert ok.returncode == 0 and "the newest" in ok.stdout


def test_a_command_needing_a_newer_table_names_the_revision_and_the_fix(run):
    # Before 0008 the audit log has no mac column, which every audited write fills.
    assert run("db", "upgrade", "0003").returncode == 0
    result = run("plan", "sync", PLAN)
    assert result.returncode == 5
    assert "revision 0003" in result.stderr and f"needs {head_revision()}" in result.stderr
    assert "run `python -m lockstep db upgrade`" in result.stderr
    _plain(result)


def test_a_database_never_migrated_is_exit_5_with_what_to_do(run):
    result = run("import", "events", str(EXAMPLES / "events.csv"))
    assert result.returncode == 5
    assert "no Lockstep schema" in result.stderr and "db upgrade" in result.stderr
    _plain(result)
    assert run("db", "check").returncode == 5


def test_a_downgrade_that_drops_data_is_refused_without_the_flag(run):
    assert run("db", "upgrade").returncode == 0
    refused = run("db", "downgrade", "base")
    assert refused.returncode == 4
    assert "destroys data" in refused.stderr and "--i-understand-data-loss" in refused.stderr
    assert "0001" in refused.stderr
    _plain(refused)
    assert "tenants" in _tables(run.db)

    gone = run("db", "downgrade", "base", "--i-understand-data-loss")
    assert gone.returncode == 0, gone.stderr
    assert "tenants" not in _tables(run.db)


def test_a_downgrade_that_drops_only_indexes_needs_no_flag(run):
    assert run("db", "upgrade", "0005").returncode == 0
    assert run("db", "downgrade", "0004").returncode == 0
    assert "revision 0004" in run("db", "current").stdout


def test_a_read_only_sqlite_file_is_exit_4_and_says_read_only(run):
    assert run("db", "upgrade").returncode == 0
    assert run("plan", "sync", PLAN).returncode == 0
    read_only = {"LOCKSTEP_DATABASE_URL": f"sqlite:///file:{run.db}?mode=ro&uri=true"}
    for args in (["import", "tenants", str(EXAMPLES / "tenants.csv")], ["plan", "sync", PLAN]):
        result = run(*args, env=read_only)
        assert result.returncode == 4, result.stderr
        assert "read-only" in result.stderr and "nothing was written" in result.stderr
        _plain(result)


@pytest.mark.postgres
def test_a_read_only_postgresql_database_is_exit_4(run, request, tmp_path):
    url = new_database_url("postgresql", request, tmp_path)
    name = url.rpartition("/")[2]
    assert run("plan", "sync", PLAN, env={"LOCKSTEP_DATABASE_URL": url}).returncode == 0
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    admin.dispose()
    for args in (["import", "tenants", str(EXAMPLES / "tenants.csv")], ["plan", "sync", PLAN]):
        result = run(*args, env={"LOCKSTEP_DATABASE_URL": url})
        assert result.returncode == 4, result.stderr
        assert "read-only" in result.stderr
        _plain(result)


def test_an_unreachable_server_is_exit_5_and_says_so(run):
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=5"
    for args in (["db", "check"], ["plan", "sync", PLAN]):
        result = run(*args, env={"LOCKSTEP_DATABASE_URL": url})
        assert result.returncode == 5
        assert "cannot reach the database" in result.stderr
        assert "db upgrade" not in result.stderr
        _plain(result)


def test_rebuild_state_dry_run_then_run(run):
    assert run("db", "upgrade").returncode == 0
    assert run("plan", "sync", PLAN).returncode == 0
    assert run("import", "tenants", str(EXAMPLES / "tenants.csv")).returncode == 0
    assert run("import", "events", str(EXAMPLES / "events.csv")).returncode == 0
    clean = run("db", "rebuild-state", "--dry-run")
    assert clean.returncode == 0, clean.stderr
    assert "would change 0 state rows and 0 count rows" in clean.stdout

    with sqlite3.connect(run.db) as conn:
        tenant, track = conn.execute(
            "SELECT t.external_id, c.track_code FROM current_state c JOIN tenants t ON t.id = c.tenant_id "
            "WHERE c.last_event_id IS NOT NULL ORDER BY t.external_id, c.track_code LIMIT 1"
        ).fetchone()
        conn.execute(
            "UPDATE current_state SET stage_code = 'blocked' WHERE track_code = ? AND tenant_id = "
            "(SELECT id FROM tenants WHERE external_id = ?)",
            (track, tenant),
        )
    dry = run("db", "rebuild-state", "--dry-run")
    assert dry.returncode == 1
    assert f"{tenant} {track}: stored blocked" in dry.stdout
    assert "would change 1 state rows" in dry.stdout and "nothing was written" in dry.stdout
    fixed = run("db", "rebuild-state")
    assert fixed.returncode == 0 and "rebuilt 1 state rows" in fixed.stdout
    assert "would change 0 state rows and 0 count rows" in run("db", "rebuild-state", "--dry-run").stdout
    assert run("audit", "verify").returncode == 0


def test_the_new_commands_have_help(run):
    for command in (["db", "current"], ["db", "check"], ["db", "downgrade"], ["db", "rebuild-state"]):
        result = run(*command, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout
