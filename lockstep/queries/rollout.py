"""Rollout questions: where tenants stand per track, week by week, and against the cut-over.

Counts come from the live `stage_counts` table unless the answer has to be per tenant
(an account manager's own tenants, or a filter by manager): then from `current_state`.
Filters are tuples of codes; an empty tuple means "all".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import pandas as pd
from sqlalchemy import Select, case, column, false, func, or_, select, table
from sqlalchemy.orm import Session

from lockstep.clock import week_label
from lockstep.csvio import CONTROL_CHARS
from lockstep.errors import NotFoundError
from lockstep.forecast import WeekPoint, pace_per_week
from lockstep.models import (
    CurrentState,
    ManagerCount,
    RolloutEvent,
    StageCount,
    StageTotal,
    Tenant,
    TenantFeature,
    Tier,
    Track,
    TrackStage,
    WeeklySnapshot,
)
from lockstep.permissions import Actor
from lockstep.queries.program import default_program, program_today
from lockstep.queries.scope import is_narrowed, scoped
from lockstep.sqlutil import walk_in_index_order

PAGE_SIZE = 50
# A search counts this many matches at most (see TenantPage).
SEARCH_COUNT_CAP = 10_000
# From this many matches an admin's search page walks the name index (SQLite; see tenant_page).
WALK_NAMES_AT = 2_000
EVENT_LIMIT = 500
# Velocity seen is measured over this window (two weeks smooths out a quiet weekend).
NOW = "now"


def tracks(*, session: Session, program: str | None = None) -> pd.DataFrame:
    """The program's tracks (default: the default program) in order: code, name, deadline, ready_stage."""
    rows = session.execute(
        select(Track.code, Track.name, Track.deadline, Track.ready_stage)
        .where(Track.program_id == (program or default_program(session=session)))
        .order_by(Track.position, Track.code)
    ).all()
    return pd.DataFrame(rows, columns=["code", "name", "deadline", "ready_stage"])


def track_stages(*, session: Session, track: str) -> pd.DataFrame:
    """Stages of `track`, ordered stages first: columns stage, name, position, is_side, description."""
    rows = session.execute(
        select(
            TrackStage.code, TrackStage.name, TrackStage.position, TrackStage.is_side, TrackStage.description
        )
        .where(TrackStage.track_code == track)
        .order_by(TrackStage.is_side, TrackStage.position, TrackStage.code)
    ).all()
    return pd.DataFrame(rows, columns=["stage", "name", "position", "is_side", "description"])


def filter_options(*, session: Session, actor: Actor) -> dict[str, list[str]]:
    """Values the filters offer: keys tiers, regions, managers (a manager sees only themself).

    Regions and managers are those of tenants on some track, read from the live counts
    (a few thousand rows) rather than from a million tenants.
    """
    tiers = session.scalars(select(Tier.code).order_by(Tier.position, Tier.code)).all()
    # A manager's own rows of stage_counts; everyone else the rollups (a few hundred rows for
    # the regions, one row per manager and stage for the managers, read in key order).
    counts = StageCount if actor.is_manager else StageTotal
    live_regions = select(counts.region).distinct().where(counts.n > 0)
    live_regions = scoped(live_regions, actor, StageCount.account_manager).order_by(counts.region)
    regions = session.scalars(live_regions).all()
    managers = (
        [actor.email]
        if actor.is_manager
        else session.scalars(
            select(ManagerCount.account_manager)
            .group_by(ManagerCount.account_manager)
            .having(func.max(ManagerCount.n) > 0)
            .order_by(ManagerCount.account_manager)
        ).all()
    )
    return {"tiers": list(tiers), "regions": list(regions), "managers": list(managers)}


def _filter(stmt: Select, cols, *, tiers=(), regions=(), managers=(), stages=()) -> Select:
    """Apply the page filters to `stmt`; `cols` maps tier/region/manager/stage to columns."""
    for key, values in (("tier", tiers), ("region", regions), ("manager", managers), ("stage", stages)):
        if values:
            stmt = stmt.where(cols[key].in_(list(values)))
    return stmt


def _state_cols() -> dict:
    return {
        "tier": CurrentState.tier,
        "region": CurrentState.region,
        "manager": CurrentState.account_manager,
        "stage": CurrentState.stage_code,
    }


def _counts_now(track: str, actor: Actor, filters: dict) -> Select:
    """SELECT stage, n for `track` now, from the live counts (kept per manager too)."""
    if not is_narrowed(actor, filters.get("managers")):
        # No manager in view: the rollup over managers (a few hundred rows, not one per manager).
        stmt = select(StageTotal.stage_code.label("stage"), func.sum(StageTotal.n).label("n")).where(
            StageTotal.track_code == track
        )
        cols = {"tier": StageTotal.tier, "region": StageTotal.region, "stage": StageTotal.stage_code}
        return _filter(stmt, cols, **filters).group_by(StageTotal.stage_code)
    stmt = select(StageCount.stage_code.label("stage"), func.sum(StageCount.n).label("n")).where(
        StageCount.track_code == track
    )
    cols = {
        "tier": StageCount.tier,
        "region": StageCount.region,
        "manager": StageCount.account_manager,
        "stage": StageCount.stage_code,
    }
    return _filter(scoped(stmt, actor, StageCount.account_manager), cols, **filters).group_by(
        StageCount.stage_code
    )


def stage_funnel(
    *, session: Session, track: str, actor: Actor, tiers=(), regions=(), managers=(), stages=()
) -> pd.DataFrame:
    """Tenants now at each stage of `track` (zeros included).

    Columns: stage, name, position, is_side, n. Ordered stages first, then side stages;
    with a stage filter, only the chosen stages.
    """
    filters = {"tiers": tiers, "regions": regions, "managers": managers, "stages": stages}
    counts = _counts_now(track, actor, filters).subquery()
    stmt = (
        select(
            TrackStage.code,
            TrackStage.name,
            TrackStage.position,
            TrackStage.is_side,
            func.coalesce(counts.c.n, 0),
        )
        .outerjoin(counts, counts.c.stage == TrackStage.code)
        .where(TrackStage.track_code == track)
        .order_by(TrackStage.is_side, TrackStage.position, TrackStage.code)
    )
    if stages:
        stmt = stmt.where(TrackStage.code.in_(list(stages)))
    df = pd.DataFrame(session.execute(stmt).all(), columns=["stage", "name", "position", "is_side", "n"])
    df["n"] = df["n"].astype(int)
    df["is_side"] = df["is_side"].astype(bool)
    return df


def stage_mix_by_week(
    *, session: Session, track: str, actor: Actor, tiers=(), regions=(), managers=(), stages=()
) -> pd.DataFrame:
    """Tenants per stage for each closed ISO week (as now restated), then the live counts as "now".

    Columns: week_start (None for now), week ("2020-W15" or "now"), stage, n. Closed weeks
    are frozen per tier and region only, so for a manager's tenants only "now" is returned.
    """
    frames = []
    filters = {"tiers": tiers, "regions": regions, "managers": managers, "stages": stages}
    if not is_narrowed(actor, managers):
        stmt = select(
            WeeklySnapshot.week_start, WeeklySnapshot.stage_code, func.sum(WeeklySnapshot.n_current)
        ).where(WeeklySnapshot.track_code == track)
        cols = {
            "tier": WeeklySnapshot.tier,
            "region": WeeklySnapshot.region,
            "stage": WeeklySnapshot.stage_code,
        }
        stmt = _filter(stmt, cols, tiers=tiers, regions=regions, stages=stages)
        stmt = stmt.group_by(WeeklySnapshot.week_start, WeeklySnapshot.stage_code).order_by(
            WeeklySnapshot.week_start
        )
        weekly = pd.DataFrame(session.execute(stmt).all(), columns=["week_start", "stage", "n"])
        weekly["week"] = [week_label(d) for d in weekly["week_start"]]
        frames.append(weekly)
    now = pd.DataFrame(session.execute(_counts_now(track, actor, filters)).all(), columns=["stage", "n"])
    now["week_start"] = None
    now["week"] = NOW
    frames.append(now)
    df = pd.concat([f for f in frames if not f.empty] or [now], ignore_index=True)
    df["n"] = df["n"].astype(int)
    return df[df["n"] > 0][["week_start", "week", "stage", "n"]].reset_index(drop=True)


@dataclass(frozen=True)
class Cutover:
    """Where a track with a deadline stands against it, and the pace it is moving at.

    `pace` follows lockstep.forecast.PACE_DEFINITION (the Weekly forecast's too), for
    tenants at the ready stage or later; None when fewer than two weeks are closed or the
    view is one account manager's (closed weeks are kept per tier and region only).
    """

    track: str
    deadline: date
    ready_stage: str
    today: date
    total: int
    not_ready: int
    side: int
    pace: float | None = None
    pace_weeks: int = 0

    @property
    def days_left(self) -> int:
        """Days from today to the deadline (negative once it has passed)."""
        return (self.deadline - self.today).days

    @property
    def passed(self) -> bool:
        """True once the deadline day is over."""
        return self.days_left < 0

    @property
    def needed_per_day(self) -> float | None:
        """Tenants that must get ready each day to make the deadline (None once it passed)."""
        if self.passed:
            return None
        return self.not_ready / max(self.days_left, 1)

    @property
    def needed_per_week(self) -> float | None:
        """needed_per_day over a week, in the pace's unit (tenants/week)."""
        return None if self.needed_per_day is None else self.needed_per_day * 7


def ready_history(
    *, session: Session, track: str, ready_stage: str, tiers=(), regions=()
) -> list[WeekPoint]:
    """Per closed week: tenants at `ready_stage` or later (not side stages), of all on the track."""
    ready_pos = select(TrackStage.position).where(
        TrackStage.track_code == track, TrackStage.code == ready_stage
    ).scalar_subquery()
    ready = (TrackStage.is_side.is_(False)) & (TrackStage.position >= ready_pos)
    stmt = (
        select(
            WeeklySnapshot.week_start,
            func.sum(case((ready, WeeklySnapshot.n_current), else_=0)),
            func.sum(WeeklySnapshot.n_current),
        )
        .join(
            TrackStage,
            (TrackStage.track_code == WeeklySnapshot.track_code)
            & (TrackStage.code == WeeklySnapshot.stage_code),
        )
        .where(WeeklySnapshot.track_code == track)
    )
    cols = {"tier": WeeklySnapshot.tier, "region": WeeklySnapshot.region}
    stmt = _filter(stmt, cols, tiers=tiers, regions=regions)
    rows = session.execute(stmt.group_by(WeeklySnapshot.week_start).order_by(WeeklySnapshot.week_start))
    return [WeekPoint(w, int(d or 0), int(t or 0)) for w, d, t in rows]


def cutover_status(
    *, session: Session, track: str, actor: Actor, tiers=(), regions=(), managers=(), stages=()
) -> Cutover | None:
    """The cut-over view of `track`; None when it has no deadline or ready stage.

    Not ready: an ordered stage before the ready stage, or a side stage. The pace is over
    closed weeks up to today (see Cutover), so it does not follow a stage filter.
    """
    row = session.execute(
        select(Track.deadline, Track.ready_stage, Track.program_id).where(Track.code == track)
    ).first()
    if row is None or row.deadline is None or row.ready_stage is None:
        return None
    ready_pos = session.scalar(
        select(TrackStage.position).where(TrackStage.track_code == track, TrackStage.code == row.ready_stage)
    )
    today = program_today(session=session, program=row.program_id)
    ready = (TrackStage.is_side.is_(False)) & (TrackStage.position >= ready_pos)
    filters = {"tiers": tiers, "regions": regions, "managers": managers, "stages": stages}
    counts = _counts_now(track, actor, filters).subquery()
    total, not_ready, side = session.execute(
        select(
            func.coalesce(func.sum(counts.c.n), 0),
            func.coalesce(func.sum(case((ready, 0), else_=counts.c.n)), 0),
            func.coalesce(func.sum(case((TrackStage.is_side, counts.c.n), else_=0)), 0),
        ).join_from(
            counts, TrackStage, (TrackStage.track_code == track) & (TrackStage.code == counts.c.stage)
        )
    ).one()
    pace, weeks = None, 0
    if not is_narrowed(actor, managers):
        history = ready_history(
            session=session, track=track, ready_stage=row.ready_stage, tiers=tiers, regions=regions
        )
        pace, weeks = pace_per_week([p for p in history if p.as_of < today])
    return Cutover(
        track, row.deadline, row.ready_stage, today, int(total), int(not_ready), int(side), pace, weeks
    )


@dataclass(frozen=True)
class TenantPage:
    """One page of the tenant table and how many rows match in all.

    A search counts at most SEARCH_COUNT_CAP matches: when more match, `total` is the cap,
    `more` is True and the pages stop there (narrow the search to reach the rest).
    """

    rows: pd.DataFrame
    total: int
    page: int
    page_size: int
    more: bool = False

    @property
    def pages(self) -> int:
        """How many pages the matching rows fill (at least one)."""
        return max(1, -(-self.total // self.page_size))


# FTS5's trigram index finds nothing for a term shorter than one trigram: those keep the LIKE.
TRIGRAM_MIN_CHARS = 3
# The FTS5 table of migration 0005 (not a model: SQLAlchemy cannot declare a virtual table).
# Its hidden column named like the table is what MATCH is asked on.
_TENANTS_FTS = table("tenants_fts", column("rowid"), column("tenants_fts"))


def tenant_search(text: str, *, session: Session, one_manager: bool = False):
    """WHERE clause: tenant name or external id contains `text` (case-insensitive, wildcards literal).

    A substring LIKE reads every tenant, so both backends use a trigram index (migration
    0005): on PostgreSQL the GIN indexes on lower(name) and lower(external_id) serve this
    same LIKE; on SQLite a term of three characters or more is looked up in the FTS5 trigram
    table as one quoted phrase, so %, _, quotes, * and AND/OR/NEAR are plain text. The FTS5
    tokenizer folds case for all of Unicode ("ünï" finds "Ünïcode"), as PostgreSQL's lower()
    does; SQLite's own lower() and LIKE fold ASCII only, which shorter terms still go through.

    A term with a control character (NUL, ESC, ...) matches nothing.

    `one_manager`: the statement keeps to one account manager's tenants. SQLite then walks
    that manager's index and probes the matches, instead of fetching every match in the
    database first: a manager has some 20,000 tenants, a common term ("ing") matches 135,000
    of a million. (SQLite cannot weigh the two itself: FTS5 gives it no estimate of the
    matches; PostgreSQL plans from statistics and needs no hint.)
    """
    term = text.strip()
    if re.search(CONTROL_CHARS, term):
        # No name or id holds a NUL or another control character (imports refuse them), and
        # PostgreSQL would refuse a NUL in the parameter outright: nothing matches.
        return false()
    if session.get_bind().dialect.name == "sqlite" and len(term) >= TRIGRAM_MIN_CHARS:
        phrase = '"' + term.replace('"', '""') + '"'
        matches = select(_TENANTS_FTS.c.rowid).where(_TENANTS_FTS.c.tenants_fts.match(phrase))
        # To SQLite's planner `id + 0` is an expression, not the rowid: it cannot drive from it.
        key = Tenant.id + 0 if one_manager else Tenant.id
        return key.in_(matches)
    return _contains(term)


def _contains(term: str):
    """lower(name) or lower(external_id) contains `term` as plain text: a LIKE with % and _ escaped."""
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    return or_(
        func.lower(Tenant.name).like(pattern, escape="\\"),
        func.lower(Tenant.external_id).like(pattern, escape="\\"),
    )


def tenant_page(
    *,
    session: Session,
    actor: Actor,
    track: str,
    search: str = "",
    page: int = 1,
    page_size: int = PAGE_SIZE,
    tiers=(),
    regions=(),
    managers=(),
    stages=(),
) -> TenantPage:
    """Tenants on `track` matching the filters and a name / external id search, sorted by name.

    Columns: external_id, name, tier, region, account_manager, stage, since. Paged in SQL.
    """
    filters = {"tiers": tiers, "regions": regions, "managers": managers, "stages": stages}
    # Tenants drive the query and current_state is an EXISTS probe, so both backends walk the
    # (name, external_id) index in page order and stop after the page instead of sorting
    # every tenant on the track.
    on_track = _filter(
        select(CurrentState.tenant_id).where(
            CurrentState.tenant_id == Tenant.id, CurrentState.track_code == track
        ),
        _state_cols(),
        **filters,
    )
    unsearched = scoped(select(Tenant.id).where(on_track.exists()), actor, Tenant.account_manager)
    base = unsearched
    if search.strip():
        base = unsearched.where(tenant_search(search, session=session, one_manager=actor.is_manager))
        # Counting every match of a common or short term reads them all (135,000 tenants
        # contain "ing" at a million): count up to the cap and say "more" beyond it.
        capped = base.limit(SEARCH_COUNT_CAP + 1).subquery()
        total = session.scalar(select(func.count()).select_from(capped))
        more = total > SEARCH_COUNT_CAP
        total = min(total, SEARCH_COUNT_CAP)
        term = search.strip()
        if total >= WALK_NAMES_AT and term.isascii() and session.get_bind().dialect.name == "sqlite":
            # Many matches: walking the tenants in name order and testing each one finds a page
            # after a few hundred rows, where SQLite would gather every match from the trigram
            # table and sort them (135,000 for "ing" at a million tenants: 110-130 ms). For an
            # ASCII term the LIKE and the trigram table match the same names, save the rare
            # non-ASCII letter that Unicode case-folds into ASCII (the Kelvin sign to "k").
            base = unsearched.where(_contains(term))
            if not actor.is_manager:
                base = base.with_hint(Tenant, "INDEXED BY ix_tenants_name_external_id", "sqlite")
    else:
        # Without a search every filter is a key of the live counts: no need to count rows.
        counts = _counts_now(track, actor, filters).subquery()
        total = session.scalar(select(func.sum(counts.c.n)))
        more = False
    page = max(1, int(page))
    walk = actor.is_manager and not search.strip()
    # For one manager the manager leads the order: the same order, and only the (account_manager,
    # name, external_id) index gives it without a sort (walk_in_index_order must not find the
    # name index over every tenant instead).
    order = [Tenant.name, Tenant.external_id]
    if walk:
        order.insert(0, Tenant.account_manager)
    ids = base.order_by(*order).limit(page_size).offset((page - 1) * page_size)
    stmt = select(
        Tenant.external_id,
        Tenant.name,
        Tenant.tier,
        Tenant.region,
        Tenant.account_manager,
        CurrentState.stage_code,
        CurrentState.since,
    )
    if walk:
        # The page's ids on their own, walking the manager's (account_manager, name) index in
        # order (see walk_in_index_order: row-level security hides the manager's size from
        # PostgreSQL's planner); the rows are then read for those ids alone.
        with walk_in_index_order(session):
            stmt = stmt.where(Tenant.id.in_(list(session.scalars(ids))))
    else:
        ids = ids.subquery()
        stmt = stmt.join(ids, ids.c.id == Tenant.id)
    stmt = stmt.join(
        CurrentState, (CurrentState.tenant_id == Tenant.id) & (CurrentState.track_code == track)
    ).order_by(Tenant.name, Tenant.external_id)
    cols = ["external_id", "name", "tier", "region", "account_manager", "stage", "since"]
    return TenantPage(
        pd.DataFrame(session.execute(stmt).all(), columns=cols), int(total or 0), page, page_size, more
    )


@dataclass(frozen=True)
class TenantDetail:
    """One tenant as the rollout page shows it."""

    external_id: str
    name: str
    tier: str
    region: str
    seats: int
    account_manager: str
    client_version: str
    states: pd.DataFrame
    events: pd.DataFrame
    blockers: pd.DataFrame
    blocked_notes: pd.DataFrame


def scoped_tenant(session: Session, actor: Actor, tenant_external_id: str) -> Tenant:
    """The tenant with this external id within the actor's scope; NotFoundError otherwise."""
    tenant = session.scalar(
        scoped(select(Tenant).where(Tenant.external_id == tenant_external_id), actor, Tenant.account_manager)
    )
    if tenant is None:
        # The same answer for "no such tenant" and "not yours": no existence leak.
        raise NotFoundError(f"no tenant with id '{tenant_external_id}'")
    return tenant


def tenant_detail(*, session: Session, actor: Actor, tenant_external_id: str) -> TenantDetail:
    """A tenant's facts, stage per track, latest events (at most EVENT_LIMIT) and blockers.

    states: track, track_name, stage, reached_stage, since, note.
    events (oldest first): occurred_at, track, stage, source, actor, note.
    blockers: track, feature (features in use that block a track).
    blocked_notes: occurred_at, track, note (notes of 'blocked' events).
    """
    t = scoped_tenant(session, actor, tenant_external_id)
    states = pd.DataFrame(
        session.execute(
            select(
                CurrentState.track_code,
                Track.name,
                CurrentState.stage_code,
                CurrentState.reached_stage_code,
                CurrentState.since,
                CurrentState.note,
            )
            .join(Track, Track.code == CurrentState.track_code)
            .where(CurrentState.tenant_id == t.id)
            .order_by(Track.position, Track.code)
        ).all(),
        columns=["track", "track_name", "stage", "reached_stage", "since", "note"],
    )
    latest = (
        select(
            RolloutEvent.occurred_at,
            RolloutEvent.track_code,
            RolloutEvent.stage_code,
            RolloutEvent.source,
            RolloutEvent.actor,
            RolloutEvent.note,
        )
        .where(RolloutEvent.tenant_id == t.id)
        .order_by(RolloutEvent.occurred_at.desc(), RolloutEvent.id.desc())
        .limit(EVENT_LIMIT)
    )
    events = (
        pd.DataFrame(
            session.execute(latest).all(),
            columns=["occurred_at", "track", "stage", "source", "actor", "note"],
        )
        .iloc[::-1]
        .reset_index(drop=True)
    )
    blocked_notes = events[(events["stage"] == "blocked") & (events["note"] != "")][
        ["occurred_at", "track", "note"]
    ].reset_index(drop=True)
    return TenantDetail(
        t.external_id,
        t.name,
        t.tier,
        t.region,
        t.seats,
        t.account_manager,
        t.client_version,
        states,
        events,
        tenant_blockers(session, t.id),
        blocked_notes,
    )


def tenant_blockers(session: Session, tenant_id: int) -> pd.DataFrame:
    """Features the tenant uses that block a track: columns track, feature."""
    blocking = session.execute(select(Track.code, Track.blocking_features).order_by(Track.position)).all()
    features = set(session.scalars(select(TenantFeature.feature).where(TenantFeature.tenant_id == tenant_id)))
    rows = [(code, f) for code, listed in blocking for f in (listed or []) if f in features]
    return pd.DataFrame(rows, columns=["track", "feature"])
