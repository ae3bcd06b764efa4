"""Rollout queries on the hand-built world: funnel, weekly mix, cut-over, paging, scoping, detail.

Every expected number is an independent SQL count written here, not a call to the query
under test; a few are also worked out by hand from how the world is built.
"""

from __future__ import annotations

from datetime import date

import pytest

from lockstep.config import get_settings
from lockstep.db import read_session, write_session
from lockstep.errors import NotFoundError
from lockstep.forecast import pace_per_week
from lockstep.permissions import SYSTEM
from lockstep.queries import rollout as q
from lockstep.services.snapshots import close_week
from tests.db.rollout_world import (
    ADMIN,
    AM_A,
    AM_B,
    AS_OF,
    ENC,
    MANAGER_A,
    MANAGER_B,
    N_TENANTS,
    pinned_world,
    sql,
    tenant_facts,
)

MAY_4, MAY_11 = date(2020, 5, 4), date(2020, 5, 11)


@pytest.fixture
def world(engine, monkeypatch):
    """The hand-built world on the test's backend."""
    yield from pinned_world(engine, monkeypatch)


def test_funnel_totals_equal_stage_counts(world):
    with read_session(world) as s:
        funnel = q.stage_funnel(session=s, track="encryption", actor=ADMIN)
    counts = dict(
        sql(
            world,
            "SELECT stage_code, SUM(n) FROM stage_counts WHERE track_code='encryption' GROUP BY stage_code",
        )
    )
    assert int(funnel["n"].sum()) == sum(counts.values()) == N_TENANTS
    assert {r.stage: r.n for r in funnel.itertuples() if r.n} == {k: int(v) for k, v in counts.items() if v}
    assert list(funnel["stage"]) == [*ENC, "blocked", "rolled_back"]
    assert list(funnel["is_side"]) == [False] * 4 + [True] * 2
    # By hand: i % 6 == 0 stays at the baseline; 1..60 has ten of each story.
    assert dict(zip(funnel["stage"], funnel["n"], strict=True)) == {
        "legacy_cipher": 10,
        "clients_upgraded": 10,
        "gcm_enabled": 10,
        "gcm_enforced": 10,
        "blocked": 10,
        "rolled_back": 10,
    }


def test_funnel_for_a_manager_counts_only_their_tenants(world):
    with read_session(world) as s:
        mine = q.stage_funnel(session=s, track="encryption", actor=AM_A)
        filtered = q.stage_funnel(session=s, track="encryption", actor=ADMIN, managers=(MANAGER_A,))
    expected = dict(
        sql(
            world,
            "SELECT stage_code, COUNT(*) FROM current_state WHERE track_code='encryption' "
            "AND account_manager=:m GROUP BY stage_code",
            m=MANAGER_A,
        )
    )
    got = {r.stage: r.n for r in mine.itertuples() if r.n}
    assert got == expected
    assert filtered.equals(mine)
    assert int(mine["n"].sum()) < N_TENANTS


def test_funnel_filters_by_tier_region_and_stage(world):
    with read_session(world) as s:
        funnel = q.stage_funnel(
            session=s,
            track="encryption",
            actor=ADMIN,
            tiers=("pro", "business"),
            regions=("eu",),
            stages=("gcm_enabled", "blocked"),
        )
    expected = dict(
        sql(
            world,
            "SELECT stage_code, COUNT(*) FROM current_state WHERE track_code='encryption' "
            "AND tier IN ('pro','business') AND region='eu' "
            "AND stage_code IN ('gcm_enabled','blocked') GROUP BY stage_code",
        )
    )
    assert list(funnel["stage"]) == ["gcm_enabled", "blocked"]
    assert dict(zip(funnel["stage"], funnel["n"], strict=True)) == {
        k: expected.get(k, 0) for k in ("gcm_enabled", "blocked")
    }


def test_stage_mix_by_week_has_closed_week_then_now(world):
    with read_session(world) as s:
        mix = q.stage_mix_by_week(session=s, track="encryption", actor=ADMIN, tiers=("pro",))
        mine = q.stage_mix_by_week(session=s, track="encryption", actor=AM_A)
    assert list(dict.fromkeys(mix["week"])) == ["2020-W19", q.NOW]
    closed = dict(
        sql(
            world,
            "SELECT stage_code, SUM(n_current) FROM weekly_snapshots WHERE track_code="
            "'encryption' AND tier='pro' AND week_start=:w GROUP BY stage_code",
            w=date(2020, 5, 4),
        )
    )
    week = mix[mix["week"] == "2020-W19"]
    assert dict(zip(week["stage"], week["n"], strict=True)) == {k: int(v) for k, v in closed.items() if v}
    now = mix[mix["week"] == q.NOW]
    expected_now = dict(
        sql(
            world,
            "SELECT stage_code, COUNT(*) FROM current_state WHERE track_code="
            "'encryption' AND tier='pro' GROUP BY stage_code",
        )
    )
    assert dict(zip(now["stage"], now["n"], strict=True)) == expected_now
    # A manager's tenants have no frozen weeks of their own: only now.
    assert set(mine["week"]) == {q.NOW}


def test_cutover_numbers_match_sql(world):
    with read_session(world) as s:
        cut = q.cutover_status(session=s, track="encryption", actor=ADMIN)
        mine = q.cutover_status(session=s, track="encryption", actor=AM_B)
        assert q.cutover_status(session=s, track="e2ee", actor=ADMIN) is None
    not_ready_sql = (
        "SELECT COUNT(*) FROM current_state cs JOIN track_stages ts ON ts.track_code=cs.track_code "
        "AND ts.code=cs.stage_code WHERE cs.track_code='encryption' AND (ts.is_side OR ts.position < "
        "(SELECT position FROM track_stages WHERE track_code='encryption' AND code='gcm_enabled')) {extra}"
    )
    assert cut.today == AS_OF and cut.days_left == 10 and not cut.passed
    assert cut.total == N_TENANTS
    # By hand: legacy, clients upgraded, blocked and rolled back, ten each.
    assert cut.not_ready == sql(world, not_ready_sql.format(extra=""))[0][0] == 40
    assert cut.side == 20
    assert cut.needed_per_day == pytest.approx(4.0)
    assert cut.needed_per_week == pytest.approx(28.0)
    # One closed week is no pace; a manager's view has no closed weeks of its own.
    assert cut.pace is None and mine.pace is None
    assert (
        mine.not_ready
        == sql(world, not_ready_sql.format(extra="AND cs.account_manager=:m"), m=MANAGER_B)[0][0]
    )
    assert (
        mine.total
        == sql(
            world,
            "SELECT COUNT(*) FROM current_state WHERE track_code='encryption' AND account_manager=:m",
            m=MANAGER_B,
        )[0][0]
    )


READY_IN_WEEK_SQL = (
    "SELECT COALESCE(SUM(ws.n_current), 0) FROM weekly_snapshots ws JOIN track_stages ts "
    "ON ts.track_code=ws.track_code AND ts.code=ws.stage_code WHERE ws.track_code='encryption' "
    "AND NOT ts.is_side AND ts.position >= 2 AND ws.week_start=:w {extra}"
)


def test_cutover_pace_is_the_weekly_forecasts_definition(world):
    with write_session(world) as s:
        close_week(session=s, actor=SYSTEM, week_start=date(2020, 5, 11))
    with read_session(world) as s:
        cut = q.cutover_status(session=s, track="encryption", actor=ADMIN)
        pro = q.cutover_status(session=s, track="encryption", actor=ADMIN, tiers=("pro",))
        mine = q.cutover_status(session=s, track="encryption", actor=AM_B)
    ready = {w: sql(world, READY_IN_WEEK_SQL.format(extra=""), w=w)[0][0] for w in (MAY_4, MAY_11)}
    # Net gain at gcm_enabled or later from the week of 4 May to that of 11 May: one week.
    assert cut.pace == pytest.approx(ready[MAY_11] - ready[MAY_4]) and cut.pace_weeks == 1
    pro_ready = {w: sql(world, READY_IN_WEEK_SQL.format(extra="AND ws.tier='pro'"), w=w)[0][0]
                 for w in (MAY_4, MAY_11)}
    assert pro.pace == pytest.approx(pro_ready[MAY_11] - pro_ready[MAY_4])
    assert mine.pace is None
    # The same numbers through the forecast's own pace function give the same answer.
    with read_session(world) as s:
        history = q.ready_history(session=s, track="encryption", ready_stage="gcm_enabled")
    assert pace_per_week(history)[0] == pytest.approx(cut.pace)


def test_cutover_after_the_deadline_says_how_late(world, monkeypatch):
    monkeypatch.setenv("LOCKSTEP_AS_OF", "2020-06-04")
    get_settings.cache_clear()
    with read_session(world) as s:
        cut = q.cutover_status(session=s, track="encryption", actor=ADMIN)
    assert cut.passed and cut.days_left == -5 and cut.needed_per_day is None
    assert cut.not_ready == 40


def test_tenant_pages_are_disjoint_and_counted(world):
    with read_session(world) as s:
        p1 = q.tenant_page(session=s, actor=ADMIN, track="encryption", page=1, page_size=10)
        p3 = q.tenant_page(session=s, actor=ADMIN, track="encryption", page=3, page_size=10)
        last = q.tenant_page(session=s, actor=ADMIN, track="encryption", page=7, page_size=10)
        e2ee = q.tenant_page(session=s, actor=ADMIN, track="e2ee", page=1, page_size=10)
    assert p1.total == p3.total == N_TENANTS and p1.pages == 6
    assert len(p1.rows) == len(p3.rows) == 10 and last.rows.empty
    assert not set(p1.rows["external_id"]) & set(p3.rows["external_id"])
    names = [r[0] for r in sql(world, "SELECT name FROM tenants ORDER BY name, external_id")]
    assert list(p1.rows["name"]) == names[:10] and list(p3.rows["name"]) == names[20:30]
    assert e2ee.total == sql(world, "SELECT COUNT(*) FROM tenants WHERE tier <> 'free'")[0][0]


def test_a_managers_pages_walk_their_tenants_by_name(world):
    # A manager's page reads its ids first (walk_in_index_order), then the rows: same rows, same
    # order as the SQL, in the manager's own scoped session (row-level security on PostgreSQL).
    mine = "SELECT name FROM tenants WHERE account_manager = :m ORDER BY name, external_id"
    names = [r[0] for r in sql(world, mine, m=MANAGER_A)]
    pages = []
    for page in (1, 2, 3):
        with read_session(world, actor=AM_A) as s:
            pages.append(q.tenant_page(session=s, actor=AM_A, track="encryption", page=page, page_size=4))
    assert [list(p.rows["name"]) for p in pages] == [names[0:4], names[4:8], names[8:12]]
    assert set(pages[0].rows["account_manager"]) == {MANAGER_A}


def test_tenant_search_by_name_or_id_takes_wildcards_literally(world):
    with read_session(world) as s:
        alpha = q.tenant_page(session=s, actor=ADMIN, track="encryption", search="ALPHA")
        by_id = q.tenant_page(session=s, actor=ADMIN, track="encryption", search="t01")
        percent = q.tenant_page(session=s, actor=ADMIN, track="encryption", search="0% off_")
        underscore = q.tenant_page(session=s, actor=ADMIN, track="encryption", search="_")
        mine = q.tenant_page(session=s, actor=AM_A, track="encryption", search="alpha")
    assert (
        alpha.total == sql(world, "SELECT COUNT(*) FROM tenants WHERE lower(name) LIKE '%alpha%'")[0][0] > 0
    )
    assert set(by_id.rows["external_id"]) == {f"T{i:03d}" for i in range(10, 20)}
    assert list(percent.rows["name"]) == ["50% Off_Outlet"]
    assert list(underscore.rows["name"]) == ["50% Off_Outlet"]
    assert (
        mine.total
        == sql(
            world,
            "SELECT COUNT(*) FROM tenants WHERE lower(name) LIKE '%alpha%' AND account_manager=:m",
            m=MANAGER_A,
        )[0][0]
    )
    assert set(mine.rows["account_manager"]) == {MANAGER_A}


def test_a_manager_cannot_reach_another_managers_tenant(world):
    other = tenant_facts(2)  # manager b
    assert other["account_manager"] == MANAGER_B
    with read_session(world) as s:
        with pytest.raises(NotFoundError) as theirs:
            q.tenant_detail(session=s, actor=AM_A, tenant_external_id=other["external_id"])
        with pytest.raises(NotFoundError) as missing:
            q.tenant_detail(session=s, actor=AM_A, tenant_external_id="T999")
        page = q.tenant_page(session=s, actor=AM_A, track="encryption", search=other["external_id"])
        assert q.tenant_detail(session=s, actor=AM_B, tenant_external_id=other["external_id"]).name
        options = q.filter_options(session=s, actor=AM_A)
    assert str(theirs.value) == str(missing.value).replace("T999", other["external_id"])
    assert page.total == 0
    assert options["managers"] == [MANAGER_A]


def test_tenant_detail_has_timeline_states_and_blockers(world):
    i = 28  # pro; encryption: upgraded then blocked (28 % 6 == 4); e2ee: eligible only (28 % 4 == 0)
    with read_session(world) as s:
        d = q.tenant_detail(session=s, actor=ADMIN, tenant_external_id=f"T{i:03d}")
    n_events = sql(
        world,
        "SELECT COUNT(*) FROM rollout_events e JOIN tenants t ON t.id=e.tenant_id WHERE t.external_id='T028'",
    )[0][0]
    assert len(d.events) == n_events == 4
    assert list(d.events["occurred_at"]) == sorted(d.events["occurred_at"])
    assert dict(zip(d.states["track"], d.states["stage"], strict=True)) == {
        "encryption": "blocked",
        "e2ee": "eligible",
    }
    # 28 uses cloud recording, the web client and breakout rooms; the last does not block.
    assert list(d.blockers["feature"]) == ["cloud_recording", "web_client"]
    assert list(d.blocked_notes["note"]) == ["customer change freeze"]


def test_a_search_counts_matches_up_to_the_cap_and_says_there_are_more(world, monkeypatch):
    alpha = sql(world, "SELECT COUNT(*) FROM tenants WHERE lower(name) LIKE '%alpha%'")[0][0]
    monkeypatch.setattr(q, "SEARCH_COUNT_CAP", alpha)
    matching = [
        r[0]
        for r in sql(
            world,
            "SELECT external_id FROM tenants WHERE lower(external_id) LIKE '%t0%' ORDER BY name, external_id",
        )
    ]
    assert len(matching) > alpha > 0
    with read_session(world) as s:
        many = q.tenant_page(session=s, actor=ADMIN, track="encryption", search="t0", page_size=3)
        few = q.tenant_page(session=s, actor=ADMIN, track="encryption", search="alpha")
    assert (many.total, many.more, many.pages) == (alpha, True, -(-alpha // 3))
    assert list(many.rows["external_id"]) == matching[:3]  # the page itself is not capped
    assert (few.total, few.more) == (alpha, False)  # exactly the cap: nothing more


@pytest.mark.parametrize("actor", [ADMIN, AM_A], ids=["admin", "manager"])
def test_a_search_with_many_matches_pages_the_same_rows_by_either_path(world, monkeypatch, actor):
    def pages(walk_at: int) -> list[list[str]]:
        monkeypatch.setattr(q, "WALK_NAMES_AT", walk_at)
        with read_session(world) as s:
            found = [
                q.tenant_page(session=s, actor=actor, track="encryption", search="T01", page=p, page_size=3)
                for p in (1, 2, 3)
            ]
        return [list(page.rows["external_id"]) for page in found]

    # "T01" (3 characters) goes to the trigram table on SQLite unless the walk takes it.
    gathered, walked = pages(10**9), pages(1)
    assert walked == gathered and walked[0] and walked[1]  # two pages at least, both ways alike
