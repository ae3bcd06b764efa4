"""The audit chain catches every kind of tampering and names the first bad entry.

Each test writes a small chain through `audit.append`, tampers with it in raw SQL the
way someone with database access would, and checks `verify` (and the command line).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import select, text

from lockstep.config import ROOT
from lockstep.db import read_session, write_session
from lockstep.models import AuditEntry, AuditHead
from lockstep.permissions import SYSTEM, Actor
from lockstep.services import audit

N = 6


@pytest.fixture
def chain(engine):
    """A chain of N entries; returns the hash of every entry, by id."""
    with write_session(engine) as s:
        for i in range(1, N + 1):
            audit.append(s, SYSTEM, "test.write", "thing", i, before={"v": i - 1}, after={"v": i, "s": "x"})
    with read_session(engine) as s:
        return dict(s.execute(select(AuditEntry.id, AuditEntry.hash)).all())


def _sql(engine, *statements: str) -> None:
    with engine.begin() as conn:
        for stmt in statements:
            conn.execute(text(stmt))


def _verify(engine, head: str | None = None) -> audit.VerifyResult:
    with read_session(engine) as s:
        return audit.verify(s, expected_head=head)


def _cli(engine, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, LOCKSTEP_DATABASE_URL=engine.url.render_as_string(hide_password=False))
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "lockstep", "audit", "verify", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_untouched_chain_verifies_with_and_without_a_kept_head(engine, chain):
    assert _verify(engine) == audit.VerifyResult(True, N, chain[N], unkeyed=N)  # no audit key here
    assert _verify(engine, head=chain[N]).ok
    # A head kept earlier is still good after the log grew.
    assert _verify(engine, head=chain[3]).ok
    done = _cli(engine, "--head", chain[N])
    assert done.returncode == 0, done.stderr
    assert f"{N} entries" in done.stdout


def test_an_edited_row_is_named(engine, chain):
    _sql(engine, "UPDATE audit_log SET actor = 'someone-else' WHERE id = 4")
    result = _verify(engine)
    assert not result.ok
    assert result.bad_id == 4 and result.checked == 3
    assert "entry 4 was edited" in result.problem


def test_an_edited_json_body_is_named(engine, chain):
    with write_session(engine) as s:
        entry = s.get(AuditEntry, 2)
        entry.after = {"v": 999, "s": "x"}
    result = _verify(engine)
    assert (result.ok, result.bad_id) == (False, 2)


def test_an_edited_row_with_its_hash_recomputed_breaks_the_link(engine, chain):
    # A careful forger recomputes the edited row's own hash; the next row no longer follows it.
    with write_session(engine) as s:
        e = s.get(AuditEntry, 3)
        e.action = "test.forged"
        e.hash = audit.entry_hash(
            e.prev_hash, id=e.id, at=e.at, actor=e.actor, action=e.action,
            entity_type=e.entity_type, entity_id=e.entity_id, before=e.before, after=e.after,
        )
    result = _verify(engine)
    assert (result.ok, result.bad_id) == (False, 4)
    assert "entry 4 does not follow entry 3" in result.problem


def test_a_deleted_middle_row_is_named(engine, chain):
    _sql(engine, "DELETE FROM audit_log WHERE id = 3")
    result = _verify(engine)
    assert (result.ok, result.bad_id, result.checked) == (False, 3, 2)
    assert "entry 3 is missing" in result.problem


def test_a_deleted_first_row_is_named(engine, chain):
    _sql(engine, "DELETE FROM audit_log WHERE id = 1")
    result = _verify(engine)
    assert (result.ok, result.bad_id) == (False, 1)


def test_two_swapped_rows_are_named(engine, chain):
    _sql(
        engine,
        "UPDATE audit_log SET id = -1 WHERE id = 3",
        "UPDATE audit_log SET id = 3 WHERE id = 4",
        "UPDATE audit_log SET id = 4 WHERE id = -1",
    )
    result = _verify(engine)
    assert (result.ok, result.bad_id, result.checked) == (False, 3, 2)
    assert "reordered" in result.problem


def test_a_cut_off_tail_is_caught_by_the_head_row(engine, chain):
    _sql(engine, f"DELETE FROM audit_log WHERE id > {N - 2}")
    result = _verify(engine)
    assert (result.ok, result.bad_id, result.checked) == (False, N - 1, N - 2)
    assert "cut off" in result.problem


def test_a_cut_off_tail_with_a_rewritten_head_row_is_caught_by_the_kept_head(engine, chain):
    kept = chain[N]
    _sql(
        engine,
        f"DELETE FROM audit_log WHERE id > {N - 2}",
        f"UPDATE audit_head SET last_id = {N - 2}, hash = '{chain[N - 2]}' WHERE id = 1",
    )
    # The database alone now looks consistent: that is why the head is kept outside it.
    assert _verify(engine).ok
    result = _verify(engine, head=kept)
    assert (result.ok, result.bad_id) == (False, N - 1)
    assert "not in the log" in result.problem


def test_a_deleted_head_row_is_caught(engine, chain):
    _sql(engine, "DELETE FROM audit_head")
    result = _verify(engine)
    assert not result.ok and "head row is missing" in result.problem


def test_appending_after_verification_keeps_the_chain_whole(engine, chain):
    with write_session(engine) as s:
        audit.append(s, SYSTEM, "test.write", "thing", "more", after={"text": "<script>alert(1)</script>"})
    with read_session(engine) as s:
        head = s.get(AuditHead, 1)
        assert head.last_id == N + 1
    assert _verify(engine, head=chain[N]).ok


@pytest.mark.parametrize(
    "tamper, named",
    [
        (["UPDATE audit_log SET entity_id = 'x' WHERE id = 2"], "entry 2"),
        (["DELETE FROM audit_log WHERE id = 5"], "entry 5"),
        (
            [
                "UPDATE audit_log SET id = -1 WHERE id = 1",
                "UPDATE audit_log SET id = 1 WHERE id = 2",
                "UPDATE audit_log SET id = 2 WHERE id = -1",
            ],
            "entry 1",
        ),
        ([f"DELETE FROM audit_log WHERE id = {N}"], f"entry {N - 1}"),
    ],
    ids=["edited", "deleted", "reordered", "tail-cut"],
)
def test_the_command_line_exits_non_zero_and_names_the_entry(engine, chain, tamper, named):
    _sql(engine, *tamper)
    done = _cli(engine)
    assert done.returncode == 1
    assert "BROKEN" in done.stderr and named in done.stderr


def test_the_command_line_catches_a_rewritten_tail_with_the_kept_head(engine, chain):
    _sql(
        engine,
        f"DELETE FROM audit_log WHERE id = {N}",
        f"UPDATE audit_head SET last_id = {N - 1}, hash = '{chain[N - 1]}' WHERE id = 1",
    )
    assert _cli(engine).returncode == 0
    done = _cli(engine, "--head", chain[N])
    assert done.returncode == 1
    assert "not in the log" in done.stderr


# --- reading the log (lockstep.queries.audit) ------------------------------------------------


def test_audit_queries_filter_and_page_in_sql(engine, chain):
    from datetime import date, datetime

    from lockstep.queries.audit import audit_entries, audit_entry_count, audit_filter_options

    admin = Actor("admin@x.example", "admin")
    _sql(engine, "UPDATE audit_log SET at = '2020-05-01 10:00:00.000000' WHERE id IN (2, 3)")
    with write_session(engine) as s:
        audit.append(s, "dana@x.example", "note.add", "tenant", "T-1", after={"body": "<b>hi</b>"})
    with read_session(engine) as s:
        assert audit_entry_count(session=s, actor=admin) == N + 1
        page = audit_entries(session=s, actor=admin, limit=4, offset=2)
        assert list(page["id"]) == [N - 1, N - 2, N - 3, N - 4]
        assert page.iloc[0]["after"] == '{"s": "x", "v": 5}'
        only = audit_entries(session=s, actor=admin, actors=("dana@x.example",))
        assert list(only["after"]) == ['{"body": "<b>hi</b>"}'] and list(only["before"]) == [""]
        assert audit_entry_count(session=s, actor=admin, actions=("test.write",), entity_id="4") == 1
        assert audit_entry_count(session=s, actor=admin, entity_types=("tenant",)) == 1
        on_day = dict(start=date(2020, 5, 1), end=date(2020, 5, 1))
        assert list(audit_entries(session=s, actor=admin, **on_day)["id"]) == [3, 2]
        assert audit_entry_count(session=s, actor=admin, end=date(2020, 4, 30)) == 0
        assert audit_entry_count(session=s, actor=admin, start=date(2020, 5, 2)) == N - 1
        options = audit_filter_options(session=s, actor=admin)
        assert options == {
            "actors": ["dana@x.example", "system@lockstep"],
            "actions": ["note.add", "test.write"],
            "entity_types": ["tenant", "thing"],
        }
        assert isinstance(audit_entries(session=s, actor=admin)["at"].iloc[0], datetime)


@pytest.mark.parametrize("role", ["security_lead", "account_manager", "executive"])
def test_only_admins_read_the_audit_log(engine, chain, role):
    from lockstep.errors import PermissionDenied
    from lockstep.queries import audit as q

    actor = Actor(f"{role}@x.example", role)
    with read_session(engine) as s:
        readers = (q.audit_entries, q.audit_entry_count, q.audit_filter_options, q.chain_status, q.audit_head)
        for fn in readers:
            with pytest.raises(PermissionDenied):
                fn(session=s, actor=actor)


def test_the_command_line_prints_the_head_to_keep(engine, chain):
    env = dict(os.environ, LOCKSTEP_DATABASE_URL=engine.url.render_as_string(hide_password=False))
    done = subprocess.run([sys.executable, "-m", "lockstep", "audit", "head"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == chain[N]
