"""E2EE questions: adoption by tier, what holds tenants back, and who has tenants left to enable.

The population is the tenants the `e2ee` track covers (the paid tiers, per the plan);
"enabled" is the track's last ordered stage, and every other stage counts as not yet
enabled, side stages included.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lockstep.models import (
    CurrentState,
    FeatureCount,
    ManagerCount,
    StageCount,
    StageTotal,
    Tenant,
    TenantFeature,
    Tier,
    Track,
    TrackStage,
)
from lockstep.permissions import Actor
from lockstep.queries.overview import final_stage
from lockstep.queries.scope import scoped
from lockstep.sqlutil import walk_in_index_order

E2EE = "e2ee"
# The drill-down shows this many tenants at first and this many more per "show more" click;
# a CSV download reads them all (limit=None).
DRILL_DOWN_PAGE = 500
ID_BATCH = 5000

# The plan describes features but the database keeps only their codes, so their plain
# names and what each means for a customer live here, next to the one query that ranks them.
FEATURES: dict[str, tuple[str, str]] = {
    "cloud_recording": (
        "Cloud recording",
        "Cloud recording is in use; E2EE meetings cannot be recorded to the cloud yet.",
    ),
    "phone_dialin": (
        "Phone dial-in",
        "People join by telephone; phone callers cannot take part in an E2EE meeting yet.",
    ),
    "join_before_host": (
        "Join before host",
        "Join before host is on; an E2EE meeting needs the host there to hand out the meeting key.",
    ),
    "web_client": (
        "Web client",
        "People join from a web browser; E2EE meetings need the Zoom app for now.",
    ),
    "live_streaming": (
        "Live streaming",
        "Meetings are streamed live; E2EE meetings cannot be streamed to other services yet.",
    ),
    "breakout_rooms": (
        "Breakout rooms",
        "Breakout rooms are in use; E2EE meetings do not support breakout rooms yet.",
    ),
}


def feature_name(feature: str) -> str:
    """A feature code in plain words, e.g. 'Cloud recording'."""
    return FEATURES.get(feature, (feature.replace("_", " ").capitalize(), ""))[0]


def blocker_sentence(feature: str) -> str:
    """What a blocking feature means for a customer, in one plain sentence."""
    known = FEATURES.get(feature)
    if known:
        return known[1]
    return f"{feature_name(feature)} is in use; E2EE meetings do not support it yet."


def enabled_stage(*, session: Session, track: str = E2EE) -> str | None:
    """The last ordered stage of the track (what "enabled" means), or None without stages."""
    return final_stage(session=session, track=track)


def adoption_by_tier(*, session: Session, actor: Actor, track: str = E2EE) -> pd.DataFrame:
    """Covered tenants per tier and stage (zeros left out).

    Columns: tier, tier_name, stage, n; tiers in display order, stages in track order.
    """
    # A manager's own rows of stage_counts; everyone else the rollup over managers.
    sc = StageCount if actor.is_manager else StageTotal
    counts = scoped(
        select(sc.tier, sc.stage_code, func.sum(sc.n).label("n")).where(sc.track_code == track),
        actor,
        StageCount.account_manager,
    ).group_by(sc.tier, sc.stage_code)
    c = counts.subquery()
    stmt = (
        select(Tier.code, Tier.name, c.c.stage_code, c.c.n)
        .join(c, c.c.tier == Tier.code)
        .join(TrackStage, (TrackStage.track_code == track) & (TrackStage.code == c.c.stage_code))
        .where(c.c.n > 0)
        .order_by(Tier.position, Tier.code, TrackStage.is_side, TrackStage.position)
    )
    df = pd.DataFrame(session.execute(stmt).all(), columns=["tier", "tier_name", "stage", "n"])
    df["n"] = df["n"].astype(int)
    return df


def blockers_ranking(*, session: Session, actor: Actor, track: str = E2EE) -> pd.DataFrame:
    """Blocking features ranked by how many not-yet-enabled covered tenants use each.

    Columns: feature, name, tenants (largest first; features nobody uses are left out).
    """
    blocking = session.scalar(select(Track.blocking_features).where(Track.code == track)) or []
    if not blocking:
        return pd.DataFrame(columns=["feature", "name", "tenants"])
    # From the live counts (kept per manager): a few hundred rows, not every feature row.
    tenants = func.sum(FeatureCount.n)
    stmt = (
        scoped(
            select(FeatureCount.feature, tenants.label("tenants")).where(
                FeatureCount.track_code == track,
                FeatureCount.stage_code != enabled_stage(session=session, track=track),
                FeatureCount.feature.in_(list(blocking)),
            ),
            actor,
            FeatureCount.account_manager,
        )
        .group_by(FeatureCount.feature)
        .having(tenants > 0)
        .order_by(tenants.desc(), FeatureCount.feature)
    )
    df = pd.DataFrame(session.execute(stmt).all(), columns=["feature", "tenants"])
    df["tenants"] = df["tenants"].astype(int)
    df.insert(1, "name", [feature_name(f) for f in df["feature"]])
    return df


def not_enabled_by_manager(*, session: Session, actor: Actor, track: str = E2EE) -> pd.DataFrame:
    """Covered tenants not yet enabled, per account manager: columns account_manager, tenants."""
    # From the live counts per manager and stage: a few rows per manager, not every covered tenant.
    stmt = scoped(
        select(ManagerCount.account_manager, func.sum(ManagerCount.n).label("tenants")).where(
            ManagerCount.track_code == track,
            ManagerCount.stage_code != enabled_stage(session=session, track=track),
        ),
        actor,
        ManagerCount.account_manager,
    ).group_by(ManagerCount.account_manager)
    df = pd.DataFrame(session.execute(stmt).all(), columns=["account_manager", "tenants"])
    df["tenants"] = df["tenants"].astype(int)
    df = df[df["tenants"] > 0]
    return df.sort_values(["tenants", "account_manager"], ascending=[False, True]).reset_index(drop=True)


def not_enabled_tenants(
    *,
    session: Session,
    actor: Actor,
    manager: str,
    track: str = E2EE,
    limit: int | None = DRILL_DOWN_PAGE,
) -> pd.DataFrame:
    """One manager's covered tenants not yet enabled, by name, the first `limit` (None: all).

    Columns: external_id, name, tier, region, stage, since, blockers (plain names, "; "-joined).
    """
    enabled = enabled_stage(session=session, track=track)
    stmt = select(
        Tenant.id,
        Tenant.external_id,
        Tenant.name,
        Tenant.tier,
        Tenant.region,
        CurrentState.stage_code,
        CurrentState.since,
    )
    if limit is None:
        page = _all_not_enabled(actor, manager, track, enabled)
        stmt = stmt.join(page, page.c.id == Tenant.id)
    else:
        # The first `limit` ids on their own, walking the manager's (account_manager, name)
        # index (see walk_in_index_order: under row-level security PostgreSQL would otherwise
        # fetch and sort all of a manager's tenants); then the rows for those ids alone.
        with walk_in_index_order(session):
            ids = list(session.scalars(_first_not_enabled(actor, manager, track, enabled, limit)))
        stmt = stmt.where(Tenant.id.in_(ids))
    stmt = stmt.join(
        CurrentState, (CurrentState.tenant_id == Tenant.id) & (CurrentState.track_code == track)
    ).order_by(Tenant.name, Tenant.external_id)
    df = pd.DataFrame(
        session.execute(stmt).all(),
        columns=["id", "external_id", "name", "tier", "region", "stage", "since"],
    )
    blocking = session.scalar(select(Track.blocking_features).where(Track.code == track)) or []
    held: dict[int, list[str]] = {}
    if blocking and not df.empty:
        # The ids at hand, not the page query again (a second index walk at a million tenants),
        # in batches: a full download can hold more ids than SQLite takes parameters.
        ids = df["id"].tolist()
        for start in range(0, len(ids), ID_BATCH):
            rows = session.execute(
                select(TenantFeature.tenant_id, TenantFeature.feature)
                .where(
                    TenantFeature.tenant_id.in_(ids[start : start + ID_BATCH]),
                    TenantFeature.feature.in_(list(blocking)),
                )
                .order_by(TenantFeature.tenant_id, TenantFeature.feature)
            ).all()
            for tenant_id, feature in rows:
                held.setdefault(tenant_id, []).append(feature_name(feature))
    df["blockers"] = ["; ".join(held.get(i, [])) for i in df["id"]]
    return df.drop(columns=["id"])


def _all_not_enabled(actor: Actor, manager: str, track: str, enabled: str | None):
    """Ids of every one of the manager's covered tenants not yet enabled (the full download).

    From the manager's rows of the track (current_state's (track, manager, ...) index): a
    manager with 100,000 tenants of whom 20,000 are paid reads those 20,000, where walking
    every tenant in name order (as the first page does) would probe all 100,000.
    """
    return scoped(
        select(CurrentState.tenant_id.label("id")).where(
            CurrentState.track_code == track,
            CurrentState.account_manager == manager,
            CurrentState.stage_code != enabled,
        ),
        actor,
        CurrentState.account_manager,
    ).subquery()


def _first_not_enabled(actor: Actor, manager: str, track: str, enabled: str | None, limit: int):
    """Ids of the manager's first `limit` covered tenants by name that are not yet enabled."""
    # The tenant's stage on the track, if the actor may see it (NULL otherwise, or off the track).
    stage_now = (
        scoped(
            select(CurrentState.stage_code).where(
                CurrentState.tenant_id == Tenant.id,
                CurrentState.track_code == track,
                CurrentState.account_manager == manager,
            ),
            actor,
            CurrentState.account_manager,
        )
        .scalar_subquery()
    )
    # Walk the manager's tenants in name order on the (account_manager, name, external_id)
    # index, look up each one's stage, and stop at the limit. A scalar subquery rather than
    # EXISTS: PostgreSQL turns EXISTS into a hash semi-join over all of the manager's tenants
    # (20,000 at a million tenants, 140-220 ms) where the walk reads a few hundred.
    # The manager leads the order (the same order for one manager): only the (account_manager,
    # name, external_id) index gives it without a sort, so walk_in_index_order walks that one.
    return (
        select(Tenant.id)
        .where(Tenant.account_manager == manager, stage_now != enabled)
        .order_by(Tenant.account_manager, Tenant.name, Tenant.external_id)
        .limit(limit)
    )
