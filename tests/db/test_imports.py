import hashlib
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select, text

from lockstep.clock import utcnow
from lockstep.db import read_session, write_session
from lockstep.errors import ImportRejected, PermissionDenied
from lockstep.models import (
    AuditEntry,
    Base,
    CurrentState,
    FeatureCount,
    RolloutEvent,
    SnapshotWeek,
    StageCount,
    Tenant,
    TenantFeature,
    WeeklySnapshot,
)
from lockstep.permissions import SYSTEM, Actor
from lockstep.services import audit
from lockstep.services.imports import (
    ImportResult,
    import_event_frame,
    import_events,
    import_tenants,
)
from lockstep.services.rollout import recompute_state, record_event
from tests.builders import PROGRAM_ID, add_tenants, seed_plan

TENANT_HEADER = "external_id,name,tier,region,seats,account_manager,client_version,features"
EVENT_HEADER = "tenant_id,track,stage,occurred_at,source,note"

# add_tenants(seed=1): t1-00000 free, t1-00001 pro, t1-00002 business, t1-00003 enterprise, ...
FREE, PRO, BUSINESS = "t1-00000", "t1-00001", "t1-00002"


@pytest.fixture(params=["counts moved by delta", "counts recounted"], autouse=True)
def count_upkeep(request, monkeypatch):
    """Every import test runs with both ways of keeping the counts (see lockstep.services.counts)."""
    from lockstep.services import counts

    monkeypatch.setattr(counts, "RECOUNT_SHARE", 2.0 if request.param.startswith("counts moved") else 0.0)


@pytest.fixture
def db(engine):
    with write_session(engine) as s:
        seed_plan(s)
        add_tenants(s, 10, seed=1)
    return engine


def write_csv(tmp_path: Path, name: str, header: str, lines: list[str], *, bom=False, sep=",") -> Path:
    text = "\n".join([header, *lines]) + "\n"
    if sep != ",":
        text = text.replace(",", sep)
    path = tmp_path / name
    path.write_bytes((("\ufeff" if bom else "") + text).encode())
    return path


def table_fingerprint(engine) -> dict[str, tuple[int, str]]:
    """Row count and a digest of the full contents of every table."""
    out = {}
    with read_session(engine) as s:
        for table in Base.metadata.sorted_tables:
            rows = s.execute(select(table)).all()
            digest = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
            out[table.name] = (len(rows), digest)
    return out


def assert_state_matches_events(engine) -> int:
    """Every current_state row equals a replay of that tenant's events; stage counts match too."""
    checked = 0
    with read_session(engine) as s:
        for cs in s.scalars(select(CurrentState)).all():
            state = recompute_state(s, cs.tenant_id, cs.track_code)
            assert (cs.stage_code, cs.reached_stage_code) == (state.stage, state.reached), cs.tenant_id
            last = s.execute(
                select(RolloutEvent.id, RolloutEvent.occurred_at)
                .where(RolloutEvent.tenant_id == cs.tenant_id, RolloutEvent.track_code == cs.track_code)
                .order_by(RolloutEvent.occurred_at.desc(), RolloutEvent.id.desc())
                .limit(1)
            ).first()
            if last is not None:
                assert (cs.last_event_id, cs.since) == (last.id, last.occurred_at)
            checked += 1
        counts = {
            (c.track_code, c.stage_code, c.tier, c.region, c.account_manager): c.n
            for c in s.scalars(select(StageCount))
            if c.n
        }
        keys = (
            CurrentState.track_code,
            CurrentState.stage_code,
            CurrentState.tier,
            CurrentState.region,
            CurrentState.account_manager,
        )
        grouped = s.execute(select(*keys, func.count()).group_by(*keys)).all()
        assert counts == {tuple(r[:5]): r[5] for r in grouped}
    assert_feature_counts_match_state(engine)
    assert_rollups_match_state(engine)
    return checked


def assert_rollups_match_state(engine) -> None:
    """stage_totals and manager_counts (zeros aside) equal counts over current_state."""
    with read_session(engine) as s:
        for table, key in (
            ("stage_totals", "track_code, stage_code, tier, region"),
            ("manager_counts", "account_manager, track_code, stage_code"),
        ):
            kept = {tuple(r[:-1]): r[-1] for r in s.execute(text(f"SELECT {key}, n FROM {table}")) if r[-1]}
            counted = s.execute(text(f"SELECT {key}, COUNT(*) FROM current_state GROUP BY {key}")).all()
            assert kept == {tuple(r[:-1]): r[-1] for r in counted}, table


def assert_feature_counts_match_state(engine) -> None:
    """feature_counts (zeros aside) equals a count over current_state joined with tenant_features."""
    with read_session(engine) as s:
        kept = {
            (c.track_code, c.stage_code, c.feature, c.account_manager): c.n
            for c in s.scalars(select(FeatureCount))
            if c.n
        }
        counted = s.execute(
            text(
                "SELECT cs.track_code, cs.stage_code, tf.feature, cs.account_manager, COUNT(*) "
                "FROM current_state cs JOIN tenant_features tf ON tf.tenant_id = cs.tenant_id "
                "GROUP BY cs.track_code, cs.stage_code, tf.feature, cs.account_manager"
            )
        ).all()
    assert counted, "the world has no features to count"
    assert kept == {tuple(r[:4]): r[4] for r in counted}


def tenant_lines(n: int, start: int = 0) -> list[str]:
    tiers = ["free", "pro", "business", "enterprise", "education"]
    return [
        f"new-{i:03d},New Tenant {i},{tiers[i % 5]},eu-central,{10 + i},ana@lockstep.test,5.0.{i % 3},"
        + ("cloud_recording|web_client" if i % 2 else "")
        for i in range(start, start + n)
    ]


# --------------------------------------------------------------------------- tenants


def test_tenant_import_adds_tenants_features_and_state(db, tmp_path):
    path = write_csv(tmp_path, "tenants.csv", TENANT_HEADER, tenant_lines(6))
    result = import_tenants(engine=db, path=path, actor=SYSTEM)
    assert result == ImportResult("tenants", added=6, skipped=0, updated=0, rows=6)
    with read_session(db) as s:
        tenants = {
            t.external_id: t for t in s.scalars(select(Tenant).where(Tenant.external_id.like("new-%")))
        }
        assert len(tenants) == 6
        free = tenants["new-000"]
        assert (free.tier, free.seats, free.region, free.client_version) == (
            "free",
            10,
            "eu-central",
            "5.0.0",
        )
        states = s.execute(
            select(CurrentState.tenant_id, CurrentState.track_code, CurrentState.stage_code)
        ).all()
        by_tenant = {}
        for tid, track, stage in states:
            by_tenant.setdefault(tid, {})[track] = stage
        assert by_tenant[free.id] == {"encryption": "legacy_cipher"}
        assert by_tenant[tenants["new-001"].id] == {"encryption": "legacy_cipher", "e2ee": "eligible"}
        features = s.scalars(
            select(TenantFeature.feature).where(TenantFeature.tenant_id == tenants["new-001"].id)
        ).all()
        assert sorted(features) == ["cloud_recording", "web_client"]
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "import.tenants")).one()
        assert entry.entity_id == "tenants.csv"
        assert entry.after["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert (entry.after["rows"], entry.after["added"], entry.after["skipped"]) == (6, 6, 0)
        assert audit.verify(s).ok
    assert_state_matches_events(db)


def test_reimporting_the_same_tenants_changes_nothing(db, tmp_path):
    path = write_csv(tmp_path, "tenants.csv", TENANT_HEADER, tenant_lines(5))
    import_tenants(engine=db, path=path, actor=SYSTEM)
    before = table_fingerprint(db)
    again = import_tenants(engine=db, path=path, actor=SYSTEM)
    assert (again.added, again.updated, again.skipped, again.rows) == (0, 0, 5, 5)
    assert table_fingerprint(db) == before


def test_changed_tenants_are_updated_and_state_follows_the_tier(db, tmp_path):
    with read_session(db) as s:
        free = s.scalar(select(Tenant).where(Tenant.external_id == FREE))
        business = s.scalar(select(Tenant).where(Tenant.external_id == BUSINESS))
        lines = [
            # free -> pro: gains e2ee at its first stage; new name and features.
            f"{FREE},Renamed,pro,{free.region},{free.seats},{free.account_manager},{free.client_version},phone_dialin",
            # business -> free without any e2ee event: its untouched e2ee state goes.
            f"{BUSINESS},{business.name},free,us-west,{business.seats},zoe@lockstep.test,{business.client_version},",
        ]
        free_id, business_id = free.id, business.id
    result = import_tenants(engine=db, path=write_csv(tmp_path, "t.csv", TENANT_HEADER, lines), actor=SYSTEM)
    assert (result.added, result.updated, result.skipped) == (0, 2, 0)
    with read_session(db) as s:
        states = {(r.tenant_id, r.track_code): r for r in s.scalars(select(CurrentState)).all()}
        assert states[(free_id, "e2ee")].stage_code == "eligible"
        assert states[(free_id, "e2ee")].tier == "pro"
        assert (business_id, "e2ee") not in states
        moved = states[(business_id, "encryption")]
        assert (moved.tier, moved.region, moved.account_manager) == ("free", "us-west", "zoe@lockstep.test")
        assert s.scalar(select(Tenant.name).where(Tenant.id == free_id)) == "Renamed"
        assert s.scalars(select(TenantFeature.feature).where(TenantFeature.tenant_id == free_id)).all() == [
            "phone_dialin"
        ]
    assert_state_matches_events(db)


def test_tier_change_that_would_drop_progress_is_refused(db, tmp_path):
    with write_session(db) as s:
        record_event(
            session=s,
            actor=SYSTEM,
            tenant_external_id=PRO,
            track="e2ee",
            stage="pilot",
            occurred_at=datetime(2020, 6, 1),
        )
        pro = s.scalar(select(Tenant).where(Tenant.external_id == PRO))
        line = f"{PRO},{pro.name},free,{pro.region},{pro.seats},{pro.account_manager},{pro.client_version},"
    before = table_fingerprint(db)
    with pytest.raises(ImportRejected) as err:
        import_tenants(engine=db, path=write_csv(tmp_path, "t.csv", TENANT_HEADER, [line]), actor=SYSTEM)
    [e] = err.value.errors
    assert (e.row, e.column, e.value) == (2, "tier", "free")
    assert "would drop the tenant's e2ee progress" in e.reason
    assert table_fingerprint(db) == before


def test_bad_tenant_file_writes_nothing_and_lists_every_bad_row(db, tmp_path):
    good = tenant_lines(2)
    lines = [
        good[0],
        "dup-1,Dup,pro,us-east,5,ana@lockstep.test,5.0.1,",
        ",No Id,pro,us-east,5,ana@lockstep.test,5.0.1,",
        "x-1,Bad Tier,platinum,us-east,5,ana@lockstep.test,5.0.1,",
        "x-2,Zero Seats,pro,us-east,0,ana@lockstep.test,5.0.1,",
        "x-3,Half Seats,pro,us-east,2.5,ana@lockstep.test,5.0.1,",
        "x-4,Bad Feature,pro,us-east,5,ana@lockstep.test,5.0.1,cloud_recording|Cloud Recording",
        "dup-1,Dup Again,pro,us-east,5,ana@lockstep.test,5.0.1,",
        "x-5," + "N" * 201 + ",pro,us-east,5,ana@lockstep.test,5.0.1,",
        "x-6,Bad Version,pro,us-east,5,ana@lockstep.test,five,",
        good[1],
    ]
    before = table_fingerprint(db)
    with pytest.raises(ImportRejected) as err:
        import_tenants(engine=db, path=write_csv(tmp_path, "bad.csv", TENANT_HEADER, lines), actor=SYSTEM)
    got = [(e.row, e.column, e.value, e.reason) for e in err.value.errors]
    assert got == [
        (4, "external_id", "", "missing required value"),
        (
            5,
            "tier",
            "platinum",
            "unknown tier 'platinum' (tiers: free, pro, business, enterprise, education)",
        ),
        (6, "seats", "0", "seats must be a positive whole number"),
        (7, "seats", "2.5", "seats must be a positive whole number"),
        (
            8,
            "features",
            "Cloud Recording",
            "not a feature code (lower-case letters, digits and _, e.g. cloud_recording)",
        ),
        (9, "external_id", "dup-1", "duplicate external_id (first on row 3)"),
        (10, "name", "N" * 77 + "...", "text too long (at most 200 characters)"),
        (11, "client_version", "five", "not a dotted version number like 5.0.2"),
    ]
    assert err.value.total_errors == 8
    assert "bad.csv" in str(err.value) and "nothing was imported" in str(err.value)
    assert table_fingerprint(db) == before


def test_header_mistake_is_one_error_naming_the_column(db, tmp_path):
    header = TENANT_HEADER.replace("seats", "seat")
    with pytest.raises(ImportRejected) as err:
        import_tenants(engine=db, path=write_csv(tmp_path, "t.csv", header, tenant_lines(1)), actor=SYSTEM)
    [e] = err.value.errors
    assert (e.row, e.column, e.value) == (1, "seats", "seat")
    assert e.reason == "column 'seat' should be named 'seats'"


def test_errors_are_capped_with_a_count_of_the_rest(db, tmp_path):
    lines = [f"c-{i},Cap {i},pro,us-east,-{i},ana@lockstep.test,5.0.1," for i in range(60)]
    with pytest.raises(ImportRejected) as err:
        import_tenants(engine=db, path=write_csv(tmp_path, "t.csv", TENANT_HEADER, lines), actor=SYSTEM)
    assert err.value.total_errors == 60
    assert [e.row for e in err.value.errors] == list(range(2, 52))
    assert str(err.value).splitlines()[-1].strip() == "... and 10 more"


def test_only_importers_may_import(db, tmp_path):
    path = write_csv(tmp_path, "t.csv", TENANT_HEADER, tenant_lines(1))
    with pytest.raises(PermissionDenied):
        import_tenants(engine=db, path=path, actor=Actor("exec@lockstep.test", "executive"))


# --------------------------------------------------------------------------- events


def test_event_import_moves_state_as_a_replay_of_the_events_would(db, tmp_path):
    with write_session(db) as s:
        # Stored history the file lands before, between and after.
        for stage, at in [
            ("clients_upgraded", datetime(2020, 4, 10)),
            ("gcm_enabled", datetime(2020, 4, 20)),
        ]:
            record_event(
                session=s,
                actor=SYSTEM,
                tenant_external_id=PRO,
                track="encryption",
                stage=stage,
                occurred_at=at,
            )
    lines = [
        f"{FREE},encryption,clients_upgraded,2020-04-05,,",
        f"{FREE},encryption,gcm_enabled,2020-04-12T10:00:00Z,telemetry,gcm on",
        f"{PRO},encryption,blocked,2020-04-25,,waiting on H.323",
        f"{PRO},encryption,gcm_enforced,2020-05-02,,",
        f"{PRO},encryption,clients_upgraded,2020-04-15,,",  # between the stored events: still in order
        f"{PRO},e2ee,pilot,2020-06-01T09:00:00+02:00,,",
        f"{PRO},e2ee,rolled_back,2020-06-03,,",
        f"{BUSINESS},e2ee,enabled,2020-06-10,,",
        f"{BUSINESS},encryption,gcm_enforced,2020-05-20,,",
    ]
    result = import_events(engine=db, path=write_csv(tmp_path, "e.csv", EVENT_HEADER, lines), actor=SYSTEM)
    assert (result.added, result.skipped, result.rows) == (9, 0, 9)
    assert assert_state_matches_events(db) == 18  # 2 free tenants x 1 track + 8 paid x 2
    with read_session(db) as s:
        state = {(r.tenant_id, r.track_code): r for r in s.scalars(select(CurrentState))}
        pro_id = s.scalar(select(Tenant.id).where(Tenant.external_id == PRO))
        assert state[(pro_id, "e2ee")].stage_code == "rolled_back"
        assert state[(pro_id, "e2ee")].reached_stage_code == "eligible"
        assert state[(pro_id, "encryption")].stage_code == "gcm_enforced"
        event = s.scalars(select(RolloutEvent).where(RolloutEvent.note == "gcm on")).one()
        assert (event.source, event.occurred_at, event.actor) == (
            "telemetry",
            datetime(2020, 4, 12, 10),
            SYSTEM.email,
        )
        assert s.scalar(select(RolloutEvent.source).where(RolloutEvent.stage_code == "pilot")) == "import"
        assert s.scalar(
            select(RolloutEvent.occurred_at).where(RolloutEvent.stage_code == "pilot")
        ) == datetime(2020, 6, 1, 7)
        assert s.scalar(select(func.count()).where(AuditEntry.action == "import.events")) == 1


def test_reimporting_events_adds_nothing_and_repeats_in_the_file_are_skipped(db, tmp_path):
    lines = [
        f"{FREE},encryption,clients_upgraded,2020-04-05,,",
        f"{FREE},encryption,clients_upgraded,2020-04-05T00:00:00Z,,",  # the same instant, written differently
        f"{PRO},encryption,gcm_enabled,2020-04-06,,",
    ]
    path = write_csv(tmp_path, "e.csv", EVENT_HEADER, lines)
    first = import_events(engine=db, path=path, actor=SYSTEM)
    assert (first.added, first.skipped) == (2, 1)
    before = table_fingerprint(db)
    again = import_events(engine=db, path=path, actor=SYSTEM)
    assert (again.added, again.skipped, again.rows) == (0, 3, 3)
    assert table_fingerprint(db) == before


def test_bom_and_semicolons(db, tmp_path):
    lines = [f'{FREE},encryption,clients_upgraded,2020-04-05,,"a note; with a semicolon"']
    path = write_csv(tmp_path, "e.csv", EVENT_HEADER, lines, bom=True, sep=";")
    assert path.read_bytes().startswith(b"\xef\xbb\xbftenant_id;track")
    assert import_events(engine=db, path=path, actor=SYSTEM).added == 1
    with read_session(db) as s:
        assert s.scalar(select(RolloutEvent.note)) == "a note, with a semicolon".replace(",", ";")


def test_optional_columns_may_be_left_out(db, tmp_path):
    path = write_csv(
        tmp_path, "e.csv", "tenant_id,track,stage,occurred_at", [f"{FREE},encryption,gcm_enabled,2020-05-01"]
    )
    assert import_events(engine=db, path=path, actor=SYSTEM).added == 1


def reject_events(db, tmp_path, lines):
    before = table_fingerprint(db)
    with pytest.raises(ImportRejected) as err:
        import_events(engine=db, path=write_csv(tmp_path, "e.csv", EVENT_HEADER, lines), actor=SYSTEM)
    assert table_fingerprint(db) == before
    return [(e.row, e.column, e.value, e.reason) for e in err.value.errors]


def test_a_step_backwards_is_rejected(db, tmp_path):
    got = reject_events(
        db,
        tmp_path,
        [
            f"{PRO},encryption,gcm_enabled,2020-04-10,,",
            f"{PRO},encryption,clients_upgraded,2020-04-12,,",
        ],
    )
    assert got == [
        (
            3,
            "stage",
            "clients_upgraded",
            "'clients_upgraded' is before the stage already reached ('gcm_enabled') on track "
            "'encryption'; going back needs an explicit 'rolled_back' event",
        )
    ]


def test_a_step_backwards_against_stored_events_is_rejected(db, tmp_path):
    with write_session(db) as s:
        record_event(
            session=s,
            actor=SYSTEM,
            tenant_external_id=PRO,
            track="encryption",
            stage="gcm_enforced",
            occurred_at=datetime(2020, 5, 1),
        )
    got = reject_events(
        db,
        tmp_path,
        [
            f"{PRO},encryption,gcm_enabled,2020-05-03,,",  # after the stored event: a step back
            f"{BUSINESS},encryption,gcm_enforced,2020-05-01,,",
        ],
    )
    assert [(r, c, v) for r, c, v, _ in got] == [(2, "stage", "gcm_enabled")]
    # Landing before a stored event makes that event the step back: the new row is blamed.
    got = reject_events(
        db, tmp_path, [f"{PRO},encryption,blocked,2020-04-02,,", f"{PRO},encryption,rolled_back,2020-04-03,,"]
    )
    assert [(r, c) for r, c, _, _ in got] == [(3, "stage")]
    assert "nothing to roll back" in got[0][3]


def test_rows_with_wrong_references_and_times_are_each_reported(db, tmp_path):
    future = (utcnow() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    got = reject_events(
        db,
        tmp_path,
        [
            f"{FREE},e2ee,pilot,2020-06-01,,",
            "nobody,encryption,gcm_enabled,2020-06-01,,",
            f"{PRO},encrypton,gcm_enabled,2020-06-01,,",
            f"{PRO},e2ee,gcm_enabled,2020-06-01,,",
            f"{PRO},encryption,gcm_enabled,{future},,",
            f"{PRO},encryption,gcm_enabled,2020-02-30,,",
            f"{PRO},encryption,,2020-06-01,,",
            f"{PRO},encryption,gcm_enabled,2020-06-01,{'s' * 65},",
        ],
    )
    assert [(r, c) for r, c, _, _ in got] == [
        (2, "track"),
        (3, "tenant_id"),
        (4, "track"),
        (5, "stage"),
        (6, "occurred_at"),
        (7, "occurred_at"),
        (8, "stage"),
        (9, "source"),
    ]
    reasons = [reason for *_, reason in got]
    assert reasons[0] == (
        f"tenant '{FREE}' is on tier 'free', which track 'e2ee' does not cover "
        "(covers: business, education, enterprise, pro)"
    )
    assert reasons[1] == "no tenant with id 'nobody' (import tenants first)"
    assert reasons[2] == "unknown track 'encrypton' (tracks: encryption, e2ee)"
    assert reasons[3].startswith("track 'e2ee' has no stage 'gcm_enabled'")
    assert reasons[4].endswith("is in the future")
    assert reasons[5].startswith("not a date or time")
    assert reasons[6] == "missing required value"


def test_event_frame_with_typed_columns(db):
    frame = pd.DataFrame(
        {
            "tenant_id": pd.Categorical([FREE, PRO]),
            "track": pd.Categorical(["encryption", "e2ee"]),
            "stage": pd.Categorical(["gcm_enabled", "pilot"]),
            "occurred_at": pd.to_datetime(["2020-05-01 10:00", "2020-06-01 00:00"]),
            "source": pd.Categorical(["demo", "demo"]),
            "note": pd.Categorical(["", "x"]),
        }
    )
    with write_session(db) as s:
        result = import_event_frame(session=s, frame=frame, actor=SYSTEM, source_name="demo")
    assert (result.added, result.rows) == (2, 2)
    assert_state_matches_events(db)
    with write_session(db) as s, pytest.raises(ImportRejected) as err:
        import_event_frame(
            session=s,
            frame=frame.assign(stage=["gcm_enabled", "gcm_enabled"]),
            actor=SYSTEM,
            source_name="demo",
        )
    assert [(e.row, e.column) for e in err.value.errors] == [(3, "stage")]


def test_back_dated_events_restate_closed_weeks(db, tmp_path):
    monday = date(2020, 4, 6)
    with write_session(db) as s:
        free = s.scalar(select(Tenant).where(Tenant.external_id == FREE))
        s.add(SnapshotWeek(program_id=PROGRAM_ID, week_start=monday, closed_at=datetime(2020, 4, 13),
                           closed_by="x@lockstep.test"))
        s.flush()
        key = {"program_id": PROGRAM_ID, "week_start": monday, "track_code": "encryption", "tier": free.tier,
               "region": free.region}
        s.add(WeeklySnapshot(**key, stage_code="legacy_cipher", n_reported=1, n_current=1))
    lines = [
        f"{FREE},encryption,clients_upgraded,2020-04-08,,",  # inside the closed week
        f"{FREE},encryption,gcm_enabled,2020-04-20,,",  # after it: no restatement
    ]
    assert (
        import_events(engine=db, path=write_csv(tmp_path, "e.csv", EVENT_HEADER, lines), actor=SYSTEM).added
        == 2
    )
    with read_session(db) as s:
        rows = {
            w.stage_code: (w.n_reported, w.n_current)
            for w in s.scalars(select(WeeklySnapshot).where(WeeklySnapshot.week_start == monday))
        }
    assert rows == {"legacy_cipher": (1, 0), "clients_upgraded": (0, 1)}
    assert_state_matches_events(db)


def test_bulk_load_path_rebuilds_the_indexes_it_set_aside(db, tmp_path, monkeypatch):
    from sqlalchemy import inspect

    import lockstep.services.imports as imports

    monkeypatch.setattr(imports, "BULK_LOAD_AT", 1)
    before = {t: {i["name"] for i in inspect(db).get_indexes(t)} for t in ("rollout_events", "current_state")}
    lines = [f"t1-{i:05d},encryption,gcm_enabled,2020-05-0{1 + i % 5},," for i in range(10)]
    assert (
        import_events(engine=db, path=write_csv(tmp_path, "e.csv", EVENT_HEADER, lines), actor=SYSTEM).added
        == 10
    )
    after = {t: {i["name"] for i in inspect(db).get_indexes(t)} for t in ("rollout_events", "current_state")}
    assert after == before and "ix_current_state_track_stage_since" in after["current_state"]
    assert_state_matches_events(db)


def test_scanning_reads_give_the_same_answers_as_batched_look_ups(db, tmp_path, monkeypatch):
    import lockstep.services.imports as imports

    monkeypatch.setattr(imports, "SCAN_AT", 0)  # every read of stored rows takes the streamed-scan path
    first = [
        f"{PRO},encryption,gcm_enabled,2020-04-20T08:00:00.5Z,,",
        f"{FREE},encryption,gcm_enforced,2020-05-01,,",
    ]
    assert (
        import_events(engine=db, path=write_csv(tmp_path, "a.csv", EVENT_HEADER, first), actor=SYSTEM).added
        == 2
    )
    later = [
        *first,
        f"{PRO},encryption,clients_upgraded,2020-04-10,,",
        f"{PRO},encryption,gcm_enforced,2020-05-01,,",
    ]
    result = import_events(engine=db, path=write_csv(tmp_path, "b.csv", EVENT_HEADER, later), actor=SYSTEM)
    assert (result.added, result.skipped) == (2, 2)
    assert_state_matches_events(db)
    got = reject_events(db, tmp_path, [f"{FREE},encryption,clients_upgraded,2020-05-02,,"])
    assert [(r, c) for r, c, _, _ in got] == [(2, "stage")]


def test_weekly_files_with_blocked_events_into_a_database_with_events(db, tmp_path):
    """Weekly files in order, `blocked` among ordered stages, each landing on the stored history.

    `blocked` keeps the stage reached, so these groups take the vectorised rule check; the state
    and the kept counts must still equal a replay of every event, and the stage reached must
    survive a `blocked` (a later earlier stage is refused).
    """
    with read_session(db) as s:
        tenants = {t.external_id: t.tier for t in s.scalars(select(Tenant))}
    walk = {
        "encryption": [
            "clients_upgraded",
            "blocked",
            "gcm_enabled",
            "gcm_enforced",
            "blocked",
            "gcm_enforced",
        ],
        "e2ee": ["blocked", "pilot", "blocked", "enabled", "blocked", "enabled"],
    }
    for week in range(3):
        lines = []
        for n, (ext, tier) in enumerate(sorted(tenants.items())):
            for track, stages in walk.items():
                if track == "e2ee" and tier == "free":
                    continue
                for k in (2 * week, 2 * week + 1):
                    at = datetime(2020, 4, 6) + timedelta(days=7 * week + 3 * (k % 2), hours=n)
                    lines.append(f"{ext},{track},{stages[k]},{at:%Y-%m-%dT%H:%M:%S},weekly,")
        path = write_csv(
            tmp_path, f"week{week}.csv", EVENT_HEADER, sorted(lines, key=lambda x: x.split(",")[3])
        )
        result = import_events(engine=db, path=path, actor=SYSTEM)
        assert (result.added, result.skipped) == (len(lines), 0)
        assert assert_state_matches_events(db) == 18
        before = table_fingerprint(db)
        again = import_events(engine=db, path=path, actor=SYSTEM)
        assert (again.added, again.skipped) == (0, len(lines))
        assert table_fingerprint(db) == before
    with read_session(db) as s:
        rows = s.execute(
            select(CurrentState.track_code, CurrentState.stage_code, CurrentState.reached_stage_code)
        )
        assert set(rows) == {("encryption", "gcm_enforced", "gcm_enforced"), ("e2ee", "enabled", "enabled")}

    # After `blocked`, an ordered stage before the one reached is still a step backwards.
    lines = [
        f"{PRO},encryption,blocked,2020-05-10,,",
        f"{PRO},encryption,gcm_enabled,2020-05-11,,",
        f"{BUSINESS},e2ee,blocked,2020-05-10,,",
    ]
    before = table_fingerprint(db)
    with pytest.raises(ImportRejected) as rejected:
        import_events(engine=db, path=write_csv(tmp_path, "back.csv", EVENT_HEADER, lines), actor=SYSTEM)
    assert [(e.row, e.column) for e in rejected.value.errors] == [(3, "stage")]
    assert "gcm_enabled" in rejected.value.errors[0].reason
    assert table_fingerprint(db) == before


def test_blocked_first_event_keeps_the_first_stage_reached(db, tmp_path):
    lines = [f"{PRO},e2ee,blocked,2020-05-10,,", f"{FREE},encryption,blocked,2020-05-10,,"]
    import_events(engine=db, path=write_csv(tmp_path, "b.csv", EVENT_HEADER, lines), actor=SYSTEM)
    assert assert_state_matches_events(db) == 18
    with read_session(db) as s:
        rows = set(
            s.execute(
                select(CurrentState.track_code, CurrentState.stage_code, CurrentState.reached_stage_code)
                .join(Tenant, Tenant.id == CurrentState.tenant_id)
                .where(Tenant.external_id.in_([PRO, FREE]), CurrentState.stage_code == "blocked")
            )
        )
    assert rows == {("e2ee", "blocked", "eligible"), ("encryption", "blocked", "legacy_cipher")}
