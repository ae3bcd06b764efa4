"""Tenant search (name or external id contains the text) on the trigram indexes of migration 0005.

On SQLite a term of three characters or more goes to the FTS5 trigram table, shorter ones
to a LIKE; on PostgreSQL the LIKE runs on the GIN trigram indexes. Either way the answer
must be the substring match people expect, so every term is checked against an
independent LIKE in SQL and against Python's own `in` over every tenant.
"""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

from lockstep.db import read_session, write_session
from lockstep.permissions import SYSTEM, Actor
from lockstep.queries import customers, rollout
from lockstep.services import imports
from lockstep.services.imports import import_tenant_frame
from tests.builders import MANAGERS, seed_plan

ADMIN = Actor("admin@lockstep.test", "admin")
ANA, BEN = MANAGERS[0], MANAGERS[1]
ALL = 10_000  # a page that holds every tenant of these tests

# (external id, name): the awkward ones, between plain names that contain none of it.
TRICKY = [
    ("EXT-001", 'O\'Brien "Quoted" Labs'),
    ("ext_under", "50% Off_Outlet"),
    ("pct%1", "100%_Pure Water"),
    ("back\\slash", "Back\\Slash Co"),
    ("U-1", "Ünïcode Labs"),
    ("U-2", "ünïcode gmbh"),
    ("U-3", "ÜNÏCODE AG"),
    ("U-4", "Zoë & Ærø Ltd"),
    ("U-5", "日本語テスト株式会社"),
    ("FTS-1", "AND OR NEAR Partners"),
    ("FTS-2", "Star*Systems"),
    ("FTS-3", "Caret^Works (Group): Minus-Plus+"),
    ("FTS-4", "Labs Labs Labs"),
    ("FTS-5", "Two  Spaces  Inc"),
    ("ab", "X"),
    ("q'uote", 'Say "Hi"'),
    ("LABS-77", "Plain Name"),
]
TERMS = [
    "labs",
    "LABS",
    "  Labs  ",
    "labs labs",
    "o'brien",
    '"quoted"',
    '"',
    "'",
    "%",
    "_",
    "0% off_",
    "%_",
    "\\",
    "back\\slash",
    "k\\s",
    "ünïcode",
    "Ünïcode",
    "ÜNÏCODE",
    "ünï",
    "zoë",
    "ærø",
    "日本",
    "日本語",
    "テスト株",
    "and",
    "and or near",
    "OR",
    "near",
    "NEAR(",
    "star*",
    "*",
    "^",
    "(group):",
    "-plus+",
    "two  spaces",
    "two spaces",
    "a",
    "ab",
    "x",
    "ext-001",
    "EXT_",
    "ext_u",
    "pct%",
    "nobody-has-this",
    "tenant 1",
    "0-00",
]


def _frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """A tenants import frame from (external id, name, manager)."""
    tiers = ("free", "pro", "business")
    return pd.DataFrame(
        {
            "external_id": [r[0] for r in rows],
            "name": [r[1] for r in rows],
            "tier": [tiers[i % 3] for i in range(len(rows))],
            "region": "eu-central",
            "seats": "10",
            "account_manager": [r[2] for r in rows],
            "client_version": "5.0.2",
            "features": "",
        }
    )


@pytest.fixture
def db(engine):
    """Plain tenants and the tricky ones, through the tenant import (a small load: per-row triggers)."""
    plain = [(f"t0-{i:05d}", f"Tenant 0-{i}", MANAGERS[i % 3]) for i in range(150)]
    tricky = [(ext, name, MANAGERS[i % 2]) for i, (ext, name) in enumerate(TRICKY)]
    with write_session(engine) as s:
        seed_plan(s)
        import_tenant_frame(session=s, frame=_frame(plain + tricky), actor=SYSTEM, source_name="test")
    return engine


def _tenants(engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return conn.execute(text("SELECT external_id, name, account_manager FROM tenants")).all()


def _like(engine, term: str) -> set[str]:
    """External ids an independent LIKE finds (the query the search used before migration 0005)."""
    escaped = term.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    sql = (
        "SELECT external_id FROM tenants WHERE lower(name) LIKE :p ESCAPE '\\' "
        "OR lower(external_id) LIKE :p ESCAPE '\\'"
    )
    with engine.connect() as conn:
        return set(conn.scalars(text(sql), {"p": f"%{escaped}%"}))


def _python(tenants, term: str, manager: str | None = None) -> set[str]:
    """External ids whose name or id contains the term, case-insensitively, by Python."""
    t = term.strip().lower()
    return {e for e, n, m in tenants if (t in n.lower() or t in e.lower()) and manager in (None, m)}


def _search(engine, term: str, actor: Actor = ADMIN) -> tuple[set[str], int, set[str]]:
    """What tenant_page (rows and total) and tenant_choices find for `term`."""
    with read_session(engine) as s:
        page = rollout.tenant_page(session=s, actor=actor, track="encryption", search=term, page_size=ALL)
        choices = customers.tenant_choices(session=s, actor=actor, search=term, limit=ALL)
    return set(page.rows["external_id"]), page.total, set(choices["external_id"])


def _like_folds_case_of(engine, term: str) -> bool:
    """True when the LIKE folds the term's case as Python does: SQLite's lower() and LIKE fold
    ASCII only, so there a term with non-ASCII letters matches only as typed in lower case."""
    return engine.dialect.name != "sqlite" or term.isascii()


def test_search_finds_exactly_the_substring_matches(db):
    tenants = _tenants(db)
    wrong = []
    for term in TERMS:
        expected = _python(tenants, term)
        page_rows, total, choices = _search(db, term)
        if not (page_rows == choices == expected and total == len(expected)):
            wrong.append((term, sorted(page_rows ^ expected), sorted(choices ^ expected), total))
        if _like_folds_case_of(db, term) and _like(db, term) != expected:
            wrong.append((term, "the LIKE differs from Python", sorted(_like(db, term) ^ expected)))
    assert wrong == []
    # The terms do reach the tricky names (a search that finds nothing would pass the loop).
    assert _search(db, "labs")[0] == {"EXT-001", "U-1", "FTS-4", "LABS-77"}
    assert _search(db, "0% off_")[0] == {"ext_under"}
    assert _search(db, "%_")[0] == {"pct%1"}
    assert _search(db, "\\")[0] == _search(db, "back\\slash")[0] == {"back\\slash"}
    assert _search(db, '"')[0] == {"EXT-001", "q'uote"}
    assert _search(db, "and or near")[0] == {"FTS-1"}
    assert _search(db, "*")[0] == _search(db, "star*")[0] == {"FTS-2"}
    assert _search(db, "nobody-has-this") == (set(), 0, set())


def test_a_long_non_ascii_term_matches_in_any_case(db):
    # Through the trigram index SQLite folds Unicode case as PostgreSQL's lower() does; the
    # plain LIKE on SQLite found only the lower-case spelling.
    for term in ("ünïcode", "Ünïcode", "ÜNÏCODE"):
        assert _search(db, term)[0] == {"U-1", "U-2", "U-3"}, term
    assert _search(db, "ZOË")[0] == {"U-4"}


def test_a_manager_finds_only_their_own_tenants(db):
    tenants = _tenants(db)
    for manager in (ANA, BEN):
        me = Actor(manager, "account_manager")
        for term in ("labs", "tenant", "0-1", "ünïcode", '"', "%", "x", "nobody-has-this"):
            page_rows, total, choices = _search(db, term, me)
            expected = _python(tenants, term, manager)
            assert page_rows == choices == expected and total == len(expected), (manager, term)
            owners = {m for e, _, m in tenants if e in page_rows | choices}
            assert owners <= {manager}
            with read_session(db) as s:
                picked = customers.tenant_choices(
                    session=s, actor=ADMIN, manager=manager, search=term, limit=ALL
                )
            assert set(picked["external_id"]) == expected, (manager, term)
    # Ana's search for Ben's tenant by its exact external id finds nothing.
    bens = next(e for e, _, m in tenants if m == BEN and e.startswith("t0-"))
    assert _search(db, bens, Actor(ANA, "account_manager")) == (set(), 0, set())
    assert _search(db, bens, Actor(BEN, "account_manager"))[0] == {bens}


def test_inserted_renamed_and_deleted_tenants_are_found_accordingly(db):
    def found(term: str) -> set[str]:
        return _search(db, term)[2]

    with write_session(db) as s:
        import_tenant_frame(
            session=s, frame=_frame([("NEW-1", "Quokka Labs", ANA)]), actor=SYSTEM, source_name="add"
        )
    assert found("quokka") == {"NEW-1"} and found("new-1") == {"NEW-1"}

    # A re-import that renames the tenant (and changes its seats) through the import's UPDATE.
    renamed = _frame([("NEW-1", "Wombat Works", ANA)]).assign(seats="20")
    with write_session(db) as s:
        import_tenant_frame(session=s, frame=renamed, actor=SYSTEM, source_name="rename")
    assert found("quokka") == set() and found("wombat") == {"NEW-1"}

    # An update that leaves name and id alone keeps the tenant findable.
    with db.begin() as conn:
        conn.execute(text("UPDATE tenants SET seats = 99 WHERE external_id = 'NEW-1'"))
    assert found("wombat") == {"NEW-1"}

    with db.begin() as conn:
        conn.execute(text("UPDATE tenants SET external_id = 'NEW-2' WHERE external_id = 'NEW-1'"))
    assert found("new-1") == set() and found("new-2") == {"NEW-2"} and found("wombat") == {"NEW-2"}

    with db.begin() as conn:
        tid = conn.scalar(text("SELECT id FROM tenants WHERE external_id = 'NEW-2'"))
        conn.execute(text("DELETE FROM current_state WHERE tenant_id = :t"), {"t": tid})
        conn.execute(text("DELETE FROM tenant_features WHERE tenant_id = :t"), {"t": tid})
        conn.execute(text("DELETE FROM tenants WHERE id = :t"), {"t": tid})
    assert found("wombat") == set() and found("new-2") == set()
    assert _search(db, "labs")[0] == {"EXT-001", "U-1", "FTS-4", "LABS-77"}

    if db.dialect.name == "sqlite":
        # FTS5 compares its index with the tenants table itself (rank 1: external content).
        with db.begin() as conn:
            conn.execute(text("INSERT INTO tenants_fts (tenants_fts, rank) VALUES ('integrity-check', 1)"))


def test_a_large_tenant_import_is_indexed_in_one_go_inside_its_transaction(db, monkeypatch):
    # A load of BULK_LOAD_AT tenants or more indexes them with one statement on SQLite instead
    # of per row; a smaller threshold here takes that path with a few hundred tenants.
    monkeypatch.setattr(imports, "BULK_LOAD_AT", 100)
    big = [(f"BULK-{i:04d}", f"Bulk Labs {i}", MANAGERS[i % 3]) for i in range(300)]
    with pytest.raises(RuntimeError), write_session(db) as s:
        import_tenant_frame(session=s, frame=_frame(big[:150]), actor=SYSTEM, source_name="undone")
        raise RuntimeError("the import's transaction fails after the tenants were written")
    assert _search(db, "bulk labs") == (set(), 0, set())

    with write_session(db) as s:
        import_tenant_frame(session=s, frame=_frame(big), actor=SYSTEM, source_name="bulk")
    tenants = _tenants(db)
    for term in ("bulk labs", "labs", "bulk-01", "s 29"):
        expected = _python(tenants, term)
        assert _search(db, term) == (expected, len(expected), expected), term
    assert len(_search(db, "bulk labs")[0]) == 300

    # The per-row trigger is back: a tenant added on its own afterwards is found.
    with write_session(db) as s:
        import_tenant_frame(
            session=s, frame=_frame([("AFTER-1", "Numbat Labs", BEN)]), actor=SYSTEM, source_name="one"
        )
    assert _search(db, "numbat")[0] == {"AFTER-1"}
    if db.dialect.name == "sqlite":
        with db.begin() as conn:
            conn.execute(text("INSERT INTO tenants_fts (tenants_fts, rank) VALUES ('integrity-check', 1)"))
