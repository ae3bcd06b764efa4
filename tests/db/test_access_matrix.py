"""Roles are enforced below the UI: every write path checks `require`, every role × write is tried.

1. The ACTIONS table is the design's "may change" column (design.md), exactly.
2. Statically: every public function in the write modules that writes (session.add,
   insert/update/delete, audit.append, attribute assignment) calls require(), directly or
   through a function of its module; the few that may not are listed with the reason.
3. For real, on both backends: each write service, called by each role. A role the table
   refuses gets PermissionDenied and nothing is written (not even to the audit log); a role
   it allows gets the write, and the audit log grows.
4. An account manager's reads and writes by tenant id stop at their own tenants.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from lockstep.config import ROOT
from lockstep.db import read_session, write_session
from lockstep.errors import LockstepError, NotFoundError, PermissionDenied
from lockstep.models import ROLES, AuditEntry, PlanItem, Tenant
from lockstep.permissions import ACTIONS, SYSTEM, Actor, can
from lockstep.plan import load_plan, sync_plan_file
from tests.builders import MANAGERS, add_tenants

PLAN_FILE = ROOT / "plan" / "90-day-plan.yaml"

# design.md, "Who uses it": what each person may change.
EXPECTED: dict[str, set[str]] = {
    "admin": set(ACTIONS),
    "security_lead": {"plan.edit", "plan.sync", "event.record", "import.run", "snapshot.close"},
    "account_manager": {"note.add", "share.create", "share.revoke"},
    "executive": set(),
}

ACTORS = {
    "admin": Actor("admin@x.example", "admin"),
    "security_lead": Actor("lead@x.example", "security_lead"),
    "account_manager": Actor(MANAGERS[0], "account_manager"),
    "executive": Actor("exec@x.example", "executive"),
}
# Refused roles first, so an allowed write never changes what a refused one would meet.
ORDER = ("executive", "account_manager", "security_lead", "admin")

WRITE_MODULES = sorted((ROOT / "lockstep" / "services").glob("*.py")) + [
    ROOT / "lockstep" / "plan" / "sync.py",
    ROOT / "lockstep" / "demo.py",
]
# Public functions that write without require(), and why that is right.
EXEMPT = {
    "auth.authenticate": "signing in is how a role is proved; it records attempts and lock-outs",
    "auth.sign_in_trusted": "the identity provider proved who it is; only an existing, active user gets in",
    "auth.sign_out": "anyone may end their own session (audited)",
    "audit.append": "the audit chain itself; called by the writes after their require()",
    "sessions.start_session": "part of signing in: opens the session of an actor authenticate() just proved",
    "sessions.activate_session": "the browser trades its one-time code (proof of a sign-in) for its cookie",
    "sessions.touch_session": "records that a valid session was used; changes nothing anyone decides on",
    "sessions.end_expired_session": "marks a session the clock already ended (idle or past its lifetime)",
    "sessions.revoke_sessions_for_user": "called by sign_out and by the user services after their require()",
    "rollout.rebuild_stage_counts": "recounts a derived table from current_state; "
    "called only from the import path after require('import.run')",
    "counts.counts_follow": "moves the derived counts around an import's own write, "
    "inside the import after require('import.run')",
    "counts.rebuild_rollups": "recounts stage_totals and manager_counts from stage_counts; "
    "called only by rebuild_stage_counts, itself exempt for the same reason",
}


pytestmark = pytest.mark.usefixtures("cheap_hashing")  # tests/db/conftest.py


# --- 1. the table -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_the_actions_table_is_the_design(role):
    assert {a for a in ACTIONS if can(Actor("x@x.example", role), a)} == EXPECTED[role]


def test_an_executive_may_not_do_anything():
    assert not any(can(ACTORS["executive"], a) for a in ACTIONS)


def test_every_action_is_checked_somewhere():
    source = "\n".join(p.read_text() for p in (ROOT / "lockstep").rglob("*.py"))
    checked = set(re.findall(r"require\(\s*\w+\s*,\s*\"([a-z_.]+)\"", source))
    assert checked == set(ACTIONS)


# --- 2. statically: writes call require -------------------------------------------------------


SESSION_WRITES = {"add", "add_all", "delete", "merge", "flush"}
STATEMENT_WRITES = {"insert", "update", "delete", "bulk_insert"}


def _writes_directly(fn: ast.FunctionDef) -> bool:
    """session.add/flush/..., insert()/update()/delete(), audit.append, or an ORM attribute set."""
    uses_session = False
    for n in ast.walk(fn):
        if isinstance(n, ast.Name) and n.id == "session":
            uses_session = True
        if not isinstance(n, ast.Call):
            continue
        f = n.func
        if isinstance(f, ast.Name) and f.id in STATEMENT_WRITES:
            return True
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            if f.value.id == "session" and f.attr in SESSION_WRITES:
                return True
            if f.value.id == "audit" and f.attr == "append":
                return True
    # Setting an attribute in a function that holds a session: an ORM row being changed.
    targets = [t for n in ast.walk(fn) if isinstance(n, ast.Assign) for t in n.targets]
    targets += [n.target for n in ast.walk(fn) if isinstance(n, ast.AugAssign)]
    return uses_session and any(
        isinstance(e, ast.Attribute) for t in targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])
    )


def _called(fn: ast.FunctionDef) -> set[tuple[str | None, str]]:
    """What a function calls: (None, f) for f(...), (m, f) for m.f(...) with m a plain name."""
    out = set()
    for n in ast.walk(fn):
        if isinstance(n, ast.Call):
            if isinstance(n.func, ast.Name):
                out.add((None, n.func.id))
            elif isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name):
                out.add((n.func.value.id, n.func.attr))
    return out


@lru_cache(maxsize=4)
def _all_write_functions(paths: tuple[Path, ...] = tuple(WRITE_MODULES)) -> dict[str, tuple[bool, bool]]:
    """'module.function' -> (writes, requires) for every public function of the write modules.

    Calls are followed within a module (f(...)) and across the write modules (module.f(...),
    or f(...) of a function imported from one), so load_demo writes through
    imports.import_tenant_frame.
    """
    funcs = {}
    for path in paths:
        for n in ast.parse(path.read_text()).body:
            if isinstance(n, ast.FunctionDef):
                funcs[(path.stem, n.name)] = n
    public = {name: key for key in funcs for name in [key[1]] if not name.startswith("_")}

    def targets(key) -> set:
        out = set()
        for qualifier, name in _called(funcs[key]):
            if qualifier is None and (key[0], name) in funcs:
                out.add((key[0], name))
            elif qualifier is None and name in public:
                out.add(public[name])
            elif (qualifier, name) in funcs:
                out.add((qualifier, name))
        return out

    edges = {key: targets(key) for key in funcs}
    writes = {key for key, fn in funcs.items() if _writes_directly(fn)}
    requires = {key for key in funcs if (None, "require") in _called(funcs[key])}
    changed = True
    while changed:
        changed = False
        for key in funcs:
            if key not in writes and edges[key] & writes:
                writes.add(key)
                changed = True
            local = {k for k in edges[key] if k[0] == key[0]}
            if key not in requires and local & requires:
                requires.add(key)
                changed = True
    return {f"{m}.{n}": ((m, n) in writes, (m, n) in requires) for m, n in funcs if not n.startswith("_")}


def _write_functions(path: Path) -> list[tuple[str, bool, bool]]:
    """(name, writes, requires) for each public top-level function of one module."""
    return [
        (name.split(".", 1)[1], w, r)
        for name, (w, r) in _all_write_functions().items()
        if name.split(".", 1)[0] == path.stem
    ]


@pytest.mark.parametrize("path", WRITE_MODULES, ids=lambda p: p.stem)
def test_every_public_write_function_calls_require(path):
    missing = [
        f"{path.stem}.{name}"
        for name, writes, requires in _write_functions(path)
        if writes and not requires and f"{path.stem}.{name}" not in EXEMPT
    ]
    assert missing == [], f"write without require(): {missing}"


def test_the_static_check_catches_a_write_without_require(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from lockstep.services import audit\n"
        "def sneaky(*, session, actor):\n    _helper(session)\n"
        "def _helper(session):\n    session.add(object())\n"
        "def via_audit(*, session, actor):\n    audit.append(session, actor, 'x', 'y', 1)\n"
        "def guarded(*, session, actor):\n    require(actor, 'x')\n    _helper(session)\n"
        "def reader(*, session):\n    rows = []\n    rows.append(1)\n    return rows\n"
    )
    found = _all_write_functions((bad,))
    assert found == {
        "bad.sneaky": (True, False),
        "bad.via_audit": (True, False),
        "bad.guarded": (True, True),
        "bad.reader": (False, False),
    }


def test_the_static_check_sees_the_known_writers():
    found = {f"{p.stem}.{n}" for p in WRITE_MODULES for n, w, r in _write_functions(p) if w and r}
    assert {
        "rollout.record_event", "plan_items.update_plan_item", "notes.add_note",
        "share_links.create_share_link", "share_links.revoke_share_link", "users.add_user",
        "snapshots.close_week", "imports.import_event_frame", "sync.sync_plan", "demo.load_demo",
        "imports.import_event_rows", "ingest.ingest_events", "api_tokens.add_api_token",
        "api_tokens.revoke_api_token", "deliveries.deliver_weekly_report", "deliveries.deliver_overdue",
    } <= found
    # And the exemptions still exist (a stale exemption would hide nothing, but mislead).
    every = {f"{p.stem}.{n}" for p in WRITE_MODULES for n, w, r in _write_functions(p) if w}
    assert set(EXEMPT) <= every


# --- 3. for real: every write × every role ----------------------------------------------------


@dataclass
class World:
    engine: object
    own: str  # a tenant of ACTORS["account_manager"]
    other: str  # a tenant of another manager


@pytest.fixture
def world(engine) -> World:
    sync_plan_file(PLAN_FILE, engine=engine)
    from lockstep.services.users import add_user

    with write_session(engine) as s:
        tenants = add_tenants(s, 6, seed=3)
        for role in ROLES:
            for n in range(2):
                add_user(session=s, actor=SYSTEM, email=f"target{n}-{role}@x.example",
                         role="executive", password="a long enough password")
    own = next(t.external_id for t in tenants if t.account_manager == MANAGERS[0] and t.tier != "free")
    other = next(t.external_id for t in tenants if t.account_manager != MANAGERS[0])
    return World(engine, own, other)


def _record_event(w, role, i):
    from lockstep.services.rollout import record_event

    return lambda s, a: record_event(session=s, actor=a, tenant_external_id=w.own, track="encryption",
                                     stage="clients_upgraded", occurred_at=datetime(2020, 4, 10, 9, i))


def _update_plan_item(w, role, i):
    from lockstep.services.plan_items import update_plan_item

    def call(s, a):
        item = s.scalars(select(PlanItem).order_by(PlanItem.id)).first()
        return update_plan_item(session=s, actor=a, item_id=item.id, expected_version=item.version,
                                comment=f"checked by {role}")
    return call


def _add_note(w, role, i):
    from lockstep.services.notes import add_note

    return lambda s, a: add_note(session=s, actor=a, tenant_external_id=w.own, body=f"note by {role}")


def _create_share_link(w, role, i):
    from lockstep.services.share_links import create_share_link

    return lambda s, a: create_share_link(session=s, actor=a, tenant_external_id=w.own)


def _revoke_share_link(w, role, i):
    from lockstep.services.share_links import create_share_link, revoke_share_link

    with write_session(w.engine) as s:
        link, _ = create_share_link(session=s, actor=SYSTEM, tenant_external_id=w.own)
    return lambda s, a: revoke_share_link(session=s, actor=a, link_id=link.id)


def _add_user(w, role, i):
    from lockstep.services.users import add_user

    return lambda s, a: add_user(session=s, actor=a, email=f"new-{role}@x.example", role="executive",
                                 password="a long enough password")


def _set_role(w, role, i):
    from lockstep.services.users import set_role

    return lambda s, a: set_role(session=s, actor=a, email=f"target0-{role}@x.example", role="security_lead")


def _deactivate_user(w, role, i):
    from lockstep.services.users import deactivate_user

    return lambda s, a: deactivate_user(session=s, actor=a, email=f"target1-{role}@x.example")


def _set_password(w, role, i):
    from lockstep.services.users import set_password

    return lambda s, a: set_password(session=s, actor=a, email=f"target0-{role}@x.example",
                                     password="another long password")


def _close_week(w, role, i):
    from lockstep.services.snapshots import close_week

    return lambda s, a: close_week(session=s, actor=a, week_start=date(2020, 4, 6 + 7 * i))


def _backfill_weeks(w, role, i):
    from lockstep.services.snapshots import backfill_weeks

    return lambda s, a: backfill_weeks(session=s, actor=a, through=date(2020, 5, 4 + 7 * i))


def _import_tenants(w, role, i):
    from lockstep.services.imports import import_tenant_frame

    frame = pd.DataFrame([{
        "external_id": f"imported-{role}", "name": f"Imported {role}", "tier": "pro", "region": "eu",
        "seats": "10", "account_manager": MANAGERS[1], "client_version": "5.0.1", "features": "",
    }])
    return lambda s, a: import_tenant_frame(session=s, frame=frame, actor=a, source_name=f"{role}.csv")


def _import_events(w, role, i):
    from lockstep.services.imports import import_event_frame

    frame = pd.DataFrame([{"tenant_id": w.own, "track": "encryption", "stage": "clients_upgraded",
                           "occurred_at": f"2020-04-2{i} 10:00"}])
    return lambda s, a: import_event_frame(session=s, frame=frame, actor=a, source_name=f"{role}.csv")


def _sync_plan(w, role, i):
    from lockstep.plan import sync_plan

    plan = load_plan(PLAN_FILE)
    return lambda s, a: sync_plan(session=s, actor=a, plan=plan)


def _add_api_token(w, role, i):
    from lockstep.services.api_tokens import add_api_token

    return lambda s, a: add_api_token(session=s, actor=a, name=f"token-by-{role}", role="executive")


def _revoke_api_token(w, role, i):
    from lockstep.services.api_tokens import add_api_token, revoke_api_token

    with write_session(w.engine) as s:
        add_api_token(session=s, actor=SYSTEM, name=f"to-revoke-{role}", role="executive")
    return lambda s, a: revoke_api_token(session=s, actor=a, name=f"to-revoke-{role}")


def _ingest_events(w, role, i):
    from lockstep.services.api_tokens import TokenHolder
    from lockstep.services.ingest import ingest_events

    rows = [{"tenant_id": w.own, "track": "encryption", "stage": "clients_upgraded",
             "occurred_at": f"2020-04-1{i} 10:00"}]
    return lambda s, a: ingest_events(session=s, holder=TokenHolder(a, 0, f"{role}-token"), rows=rows)


WRITES: dict[str, tuple[str, Callable]] = {
    "record_event": ("event.record", _record_event),
    "update_plan_item": ("plan.edit", _update_plan_item),
    "add_note": ("note.add", _add_note),
    "create_share_link": ("share.create", _create_share_link),
    "revoke_share_link": ("share.revoke", _revoke_share_link),
    "add_user": ("user.manage", _add_user),
    "set_role": ("user.manage", _set_role),
    "deactivate_user": ("user.manage", _deactivate_user),
    "set_password (someone else's)": ("user.manage", _set_password),
    "close_week": ("snapshot.close", _close_week),
    "backfill_weeks": ("snapshot.close", _backfill_weeks),
    "import_tenant_frame": ("import.run", _import_tenants),
    "import_event_frame": ("import.run", _import_events),
    "sync_plan": ("plan.sync", _sync_plan),
    "add_api_token": ("token.manage", _add_api_token),
    "revoke_api_token": ("token.manage", _revoke_api_token),
    "ingest_events (API)": ("import.run", _ingest_events),
}


def _audit_count(engine) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(AuditEntry))


@pytest.mark.parametrize("write", list(WRITES))
def test_each_role_may_do_exactly_what_the_table_says(world, write):
    action, make = WRITES[write]
    outcome = {}
    for i, role in enumerate(ORDER):
        call = make(world, role, i)
        before = _audit_count(world.engine)
        try:
            with write_session(world.engine) as s:
                call(s, ACTORS[role])
        except PermissionDenied:
            outcome[role] = "denied"
            assert _audit_count(world.engine) == before, f"{role} was refused but something was written"
        else:
            outcome[role] = "done"
            assert _audit_count(world.engine) > before, f"{write} by {role} left no audit entry"
    assert outcome == {r: "done" if can(ACTORS[r], action) else "denied" for r in ORDER}


def test_load_demo_is_for_admins_only(world):
    from lockstep.demo import load_demo

    for role in ("executive", "account_manager", "security_lead"):
        with pytest.raises(PermissionDenied):
            load_demo(engine=world.engine, tenants=5, seed=1, actor=ACTORS[role])
    # Past the gate, an admin meets the next rule: demo data goes only into an empty database.
    with pytest.raises(LockstepError, match="already has"):
        load_demo(engine=world.engine, tenants=5, seed=1, actor=ACTORS["admin"])


def test_everyone_may_change_their_own_password_only(world):
    from lockstep.services.users import set_password

    with write_session(world.engine) as s:
        set_password(session=s, actor=Actor("target0-executive@x.example", "executive"),
                     email="target0-executive@x.example", password="my own new password")
    with write_session(world.engine) as s, pytest.raises(PermissionDenied):
        set_password(session=s, actor=Actor("target0-executive@x.example", "executive"),
                     email="target1-executive@x.example", password="not my password")


# --- 4. an account manager stops at their own tenants -----------------------------------------


def test_a_manager_cannot_write_to_another_managers_tenant(world):
    from lockstep.services.notes import add_note
    from lockstep.services.share_links import create_share_link, revoke_share_link

    am = ACTORS["account_manager"]
    before = _audit_count(world.engine)
    with write_session(world.engine) as s, pytest.raises(NotFoundError):
        add_note(session=s, actor=am, tenant_external_id=world.other, body="not mine")
    with write_session(world.engine) as s, pytest.raises(NotFoundError):
        create_share_link(session=s, actor=am, tenant_external_id=world.other)
    with write_session(world.engine) as s:
        theirs, _ = create_share_link(session=s, actor=SYSTEM, tenant_external_id=world.other)
    with write_session(world.engine) as s, pytest.raises(NotFoundError):
        revoke_share_link(session=s, actor=am, link_id=theirs.id)
    assert _audit_count(world.engine) == before + 1  # only the admin's link


def test_a_manager_cannot_read_another_managers_tenant_even_by_id(world):
    from lockstep.queries.customers import customer_status, tenant_choices
    from lockstep.queries.rollout import tenant_detail

    am = ACTORS["account_manager"]
    with read_session(world.engine) as s:
        for query in (customer_status, tenant_detail):
            assert query(session=s, actor=am, tenant_external_id=world.own).external_id == world.own
            with pytest.raises(NotFoundError) as info:
                query(session=s, actor=am, tenant_external_id=world.other)
            # The same answer as for a tenant that does not exist: nothing to learn.
            with pytest.raises(NotFoundError) as missing:
                query(session=s, actor=am, tenant_external_id="no-such-tenant")
            unknown = str(missing.value).replace("no-such-tenant", "?")
            assert str(info.value).replace(world.other, "?") == unknown
        # Even naming the other manager explicitly returns only the actor's own tenants.
        choices = tenant_choices(session=s, actor=am, manager=MANAGERS[1])
        own_ids = set(s.scalars(select(Tenant.external_id).where(Tenant.account_manager == am.email)))
        assert set(choices["external_id"]) <= own_ids
        # Everyone else may read any tenant.
        for role in ("admin", "security_lead", "executive"):
            assert customer_status(session=s, actor=ACTORS[role], tenant_external_id=world.other)


def test_docs_show_the_tables_as_they_are():
    from lockstep.access import action_matrix_markdown, page_matrix_markdown

    doc = (ROOT / "docs" / "security.md").read_text()
    assert page_matrix_markdown() in doc
    assert action_matrix_markdown() in doc
