"""One customer's status, in words an account manager can show the customer.

`customer_status` is the single assembly of that view; the Customers page, a share link
and a PDF report all read it, so what a customer sees is decided here once. It holds
nothing internal: no other tenant, no e-mail but the tenant's own account manager, no
event authors, sources or internal state notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lockstep.models import (
    CurrentState,
    RolloutEvent,
    Tenant,
    TenantFeature,
    TenantNote,
    Tier,
    Track,
    TrackStage,
    User,
)
from lockstep.permissions import Actor
from lockstep.queries.e2ee import E2EE, blocker_sentence
from lockstep.queries.program import default_program, program_today
from lockstep.queries.rollout import scoped_tenant, tenant_search
from lockstep.queries.scope import scoped

CHOICES_LIMIT = 100
NOTES_LIMIT = 50


def tenant_choices(
    *,
    session: Session,
    actor: Actor,
    manager: str | None = None,
    search: str = "",
    limit: int = CHOICES_LIMIT,
) -> pd.DataFrame:
    """Tenants the actor may pick, by name, at most `limit`: columns external_id, name.

    An account manager gets only their own; others may narrow to one `manager`.
    """
    stmt = scoped(select(Tenant.external_id, Tenant.name), actor, Tenant.account_manager)
    if manager:
        stmt = stmt.where(Tenant.account_manager == manager)
    if search.strip():
        stmt = stmt.where(
            tenant_search(search, session=session, one_manager=actor.is_manager or bool(manager))
        )
    stmt = stmt.order_by(Tenant.name, Tenant.external_id).limit(limit)
    return pd.DataFrame(session.execute(stmt).all(), columns=["external_id", "name"])


@dataclass(frozen=True)
class StageStep:
    """One ordered stage of a track and when the tenant reached it (None: not yet, or the start)."""

    stage: str
    name: str
    description: str
    reached: bool
    reached_at: datetime | None


@dataclass(frozen=True)
class TrackStatus:
    """Where the tenant stands on one track and what comes next, in plain words."""

    track: str
    track_name: str
    stage: str
    stage_name: str
    since: datetime | None
    steps: tuple[StageStep, ...]
    next_stage_name: str | None
    next_text: str
    deadline: date | None
    ready: bool | None


@dataclass(frozen=True)
class Note:
    """A note on the tenant (its author is internal and left out)."""

    created_at: datetime
    body: str


@dataclass(frozen=True)
class CustomerStatus:
    """Everything the customer view shows about one tenant."""

    external_id: str
    name: str
    tier: str
    tier_name: str
    region: str
    seats: int
    account_manager: str
    as_of: date
    tracks: tuple[TrackStatus, ...]
    e2ee_eligible: bool
    e2ee_text: str
    blockers: tuple[str, ...]
    notes: tuple[Note, ...]
    account_manager_name: str = ""


def _fmt(d: date) -> str:
    return f"{d.day} {d:%B %Y}"


def _track_status(
    track: Track, stages: list[TrackStage], state, reached_at: dict, today: date
) -> TrackStatus:
    """Assemble one track's status from its stages, the tenant's state and stage dates."""
    names = {s.code: s.name for s in stages}
    ordered = [s for s in stages if not s.is_side]
    codes = [s.code for s in ordered]
    reached_pos = codes.index(state.reached_stage_code) if state.reached_stage_code in codes else 0
    steps: list[StageStep] = []
    # A stage skipped on the way (clients upgraded and GCM enabled the same day) has no
    # event of its own: it was passed when the next stage with an event was reached.
    carry: datetime | None = None
    for pos in range(len(ordered) - 1, -1, -1):
        s = ordered[pos]
        done = pos <= reached_pos
        at = reached_at.get(s.code) if done else None
        if done and at is None and pos > 0:
            at = carry
        if done and at is not None:
            carry = at
        steps.append(StageStep(s.code, s.name, s.description, done, at))
    steps.reverse()

    nxt = ordered[reached_pos + 1] if reached_pos + 1 < len(ordered) else None
    ready = None
    if track.ready_stage in codes:
        ready = state.stage_code in codes and codes.index(state.stage_code) >= codes.index(track.ready_stage)
    since = state.since
    if state.stage_code == "blocked":
        text = f"On hold since {_fmt(since)}" if since else "On hold"
        text += f"; once cleared, next is {nxt.name}." if nxt else "."
    elif state.stage_code == "rolled_back":
        text = f"Moved back to {names.get(state.reached_stage_code, state.reached_stage_code)}"
        text += f" on {_fmt(since)}" if since else ""
        text += f"; next is {nxt.name}." if nxt else "."
    elif nxt is None:
        text = f"Complete: {names.get(state.stage_code, state.stage_code)}."
    else:
        text = f"Next: {nxt.name}. {nxt.description}".strip()
    if track.deadline and ready is False:
        days = (track.deadline - today).days
        if days >= 0:
            text += f" Needed by {_fmt(track.deadline)} ({days} day{'s' if days != 1 else ''} left)."
        else:
            text += f" The deadline, {_fmt(track.deadline)}, has passed ({-days} days ago)."
    return TrackStatus(
        track.code,
        track.name,
        state.stage_code,
        names.get(state.stage_code, state.stage_code),
        since,
        tuple(steps),
        nxt.name if nxt else None,
        text,
        track.deadline,
        ready,
    )


def customer_status(
    *, session: Session, actor: Actor, tenant_external_id: str, program: str | None = None
) -> CustomerStatus:
    """The customer view of one tenant on the program's tracks (default: `default_program`).

    NotFoundError when the tenant does not exist or is not the actor's.
    """
    t = scoped_tenant(session, actor, tenant_external_id)
    program = program or default_program(session=session)
    today = program_today(session=session, program=program)
    tier = session.get(Tier, t.tier)
    tracks = session.scalars(
        select(Track).where(Track.program_id == program).order_by(Track.position, Track.code)
    ).all()
    stages = session.scalars(
        select(TrackStage).order_by(TrackStage.track_code, TrackStage.is_side, TrackStage.position)
    ).all()
    states = {
        s.track_code: s for s in session.scalars(select(CurrentState).where(CurrentState.tenant_id == t.id))
    }
    reached: dict[str, dict[str, datetime]] = {}
    for track_code, stage_code, at in session.execute(
        select(RolloutEvent.track_code, RolloutEvent.stage_code, func.max(RolloutEvent.occurred_at))
        .where(RolloutEvent.tenant_id == t.id)
        .group_by(RolloutEvent.track_code, RolloutEvent.stage_code)
    ):
        reached.setdefault(track_code, {})[stage_code] = at

    statuses = tuple(
        _track_status(
            tr,
            [s for s in stages if s.track_code == tr.code],
            states[tr.code],
            reached.get(tr.code, {}),
            today,
        )
        for tr in tracks
        if tr.code in states
    )
    e2ee = next((tr for tr in tracks if tr.code == E2EE), None)
    eligible = e2ee is not None and t.tier in (e2ee.tiers or [])
    blockers: tuple[str, ...] = ()
    if e2ee is not None and eligible:
        features = set(session.scalars(select(TenantFeature.feature).where(TenantFeature.tenant_id == t.id)))
        blockers = tuple(blocker_sentence(f) for f in (e2ee.blocking_features or []) if f in features)
    tier_name = tier.name if tier else t.tier
    if e2ee is None:
        e2ee_text = "End-to-end encryption is not part of this program."
    elif not eligible:
        e2ee_text = f"End-to-end encryption is offered on paid plans; this account is on {tier_name}."
    elif blockers:
        e2ee_text = "Eligible for end-to-end encryption once the features below are no longer in use."
    else:
        e2ee_text = "Eligible for end-to-end encryption; no feature in use stands in the way."
    notes = tuple(
        Note(created_at, body)
        for created_at, body in session.execute(
            select(TenantNote.created_at, TenantNote.body)
            .where(TenantNote.tenant_id == t.id)
            .order_by(TenantNote.created_at.desc(), TenantNote.id.desc())
            .limit(NOTES_LIMIT)
        )
    )
    return CustomerStatus(
        t.external_id,
        t.name,
        t.tier,
        tier_name,
        t.region,
        t.seats,
        t.account_manager,
        today,
        statuses,
        eligible,
        e2ee_text,
        blockers,
        notes,
        session.scalar(select(User.display_name).where(User.email == t.account_manager)) or "",
    )


def status_rows(status: CustomerStatus) -> pd.DataFrame:
    """The customer view as rows for a CSV: columns section, item, detail, date."""
    rows: list[tuple[str, str, str, str]] = [
        ("Account", "Name", status.name, ""),
        ("Account", "Id", status.external_id, ""),
        ("Account", "Plan", status.tier_name, ""),
        ("Account", "Region", status.region, ""),
        ("Account", "Seats", str(status.seats), ""),
        ("Account", "Status as of", "", status.as_of.isoformat()),
    ]
    for tr in status.tracks:
        rows.append((tr.track_name, "Now", tr.stage_name, tr.since.date().isoformat() if tr.since else ""))
        for step in tr.steps:
            when = step.reached_at.date().isoformat() if step.reached_at else ""
            rows.append((tr.track_name, step.name, "reached" if step.reached else "not yet", when))
        rows.append((tr.track_name, "What comes next", tr.next_text, ""))
    rows.append(("End-to-end encryption", "Eligibility", status.e2ee_text, ""))
    rows += [("End-to-end encryption", "Blocker", b, "") for b in status.blockers]
    rows += [("Notes", "Note", n.body, n.created_at.date().isoformat()) for n in status.notes]
    return pd.DataFrame(rows, columns=["section", "item", "detail", "date"])
