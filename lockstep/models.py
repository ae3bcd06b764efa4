"""SQLAlchemy 2 typed tables.

Conventions: every datetime is naive UTC (the same on SQLite and PostgreSQL); codes
(tiers, tracks, stages, workstreams, plan item ids) are the stable ids from the plan YAML.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints so Alembic migrations are stable across backends.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL; SQLite only auto-increments a plain INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

ROLES = ("admin", "security_lead", "account_manager", "executive")
PLAN_STATUSES = ("not_started", "in_progress", "at_risk", "blocked", "done")
SIDE_STAGES = ("blocked", "rolled_back")


class Base(DeclarativeBase):
    """Declarative base with the naming convention."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class User(Base):
    """A person who signs in; `role` is one of ROLES."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class UserSession(Base):
    """A signed-in browser; only the SHA-256 of its cookie token (or one-time hand-off code) is stored."""

    __tablename__ = "user_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    client_address: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # NULL until the browser traded the hand-off code for its cookie.
    activated_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    ended_reason: Mapped[str | None] = mapped_column(String(32))


class SignInFailure(Base):
    """One failed or refused sign-in from a client address (the per-address throttle counts these)."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (Index("ix_sign_in_failures_address_at", "address", "at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime)


class Program(Base):
    """A program: one plan file, its window; plan items, workstreams, tracks and closed weeks belong to one.

    Several programs can run side by side (the next one starts while the last one closes);
    tiers, tenants, users, share links and the audit log are shared by all of them.
    """

    __tablename__ = "program"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    synced_at: Mapped[datetime] = mapped_column(DateTime)


class Tier(Base):
    """A customer tier; `paid` decides E2EE coverage."""

    __tablename__ = "tiers"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    paid: Mapped[bool] = mapped_column(Boolean)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Track(Base):
    """A rollout with ordered stages, the tiers it covers and an optional deadline."""

    __tablename__ = "tracks"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Codes stay unique across programs: rollout events and imports name a track by its code.
    program_id: Mapped[str] = mapped_column(ForeignKey("program.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    deadline: Mapped[date | None] = mapped_column(Date)
    tiers: Mapped[list[str]] = mapped_column(JSON)
    # The first stage at which a tenant counts as ready for the cut-over.
    ready_stage: Mapped[str | None] = mapped_column(String(32))
    blocking_features: Mapped[list[str]] = mapped_column(JSON, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)


class TrackStage(Base):
    """One stage of a track; side stages (blocked, rolled_back) have no order."""

    __tablename__ = "track_stages"
    track_code: Mapped[str] = mapped_column(ForeignKey("tracks.code"), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)
    is_side: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(Text, default="")


class Workstream(Base):
    """A group of plan items with a lead."""

    __tablename__ = "workstreams"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("program.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    lead: Mapped[str] = mapped_column(String(200), default="")


class PlanItem(Base):
    """A plan item: what was planned (from YAML) and what happened (edited here)."""

    __tablename__ = "plan_items"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Ids stay unique across programs; a sync refuses an id another program owns.
    program_id: Mapped[str] = mapped_column(ForeignKey("program.id"), index=True)
    workstream_code: Mapped[str] = mapped_column(ForeignKey("workstreams.code"))
    title: Mapped[str] = mapped_column(String(300))
    owner: Mapped[str] = mapped_column(String(200))
    planned_start: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    depends_on: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(Text, default="")
    uncertain: Mapped[bool] = mapped_column(Boolean, default=False)
    # What happened: owned by the database, never overwritten by a plan sync.
    status: Mapped[str] = mapped_column(String(32), default="not_started")
    percent: Mapped[int] = mapped_column(Integer, default=0)
    comment: Mapped[str] = mapped_column(Text, default="")
    done_date: Mapped[date | None] = mapped_column(Date)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    updated_by: Mapped[str] = mapped_column(String(254), default="plan-sync")


class PlanItemUpdate(Base):
    """One saved change of a plan item: field -> [before, after]."""

    __tablename__ = "plan_item_updates"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("plan_items.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(DateTime)
    changed_by: Mapped[str] = mapped_column(String(254))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)


class Tenant(Base):
    """A customer account and the facts that matter to a track."""

    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(ForeignKey("tiers.code"))
    region: Mapped[str] = mapped_column(String(32))
    seats: Mapped[int] = mapped_column(Integer)
    account_manager: Mapped[str] = mapped_column(String(254))
    # Lowest client version seen in the tenant (dotted, e.g. "4.6.10").
    client_version: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    # Tenant lists are ordered by (name, external_id): a page is read off an index, not sorted.
    __table_args__ = (
        Index("ix_tenants_name_external_id", "name", "external_id"),
        Index("ix_tenants_manager_name", "account_manager", "name", "external_id"),
        Index("ix_tenants_seats", "seats"),
    )


class TenantFeature(Base):
    """A feature a tenant uses (e.g. cloud_recording); some block E2EE."""

    __tablename__ = "tenant_features"
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    feature: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_tenant_features_feature_tenant", "feature", "tenant_id"),)


class TenantNote(Base):
    """A note an account manager keeps on one of their tenants."""

    __tablename__ = "tenant_notes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    author: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    body: Mapped[str] = mapped_column(Text)


class RolloutEvent(Base):
    """Append-only: tenant T reached stage S of track K at time t (by U, from source X)."""

    __tablename__ = "rollout_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    track_code: Mapped[str] = mapped_column(String(32))
    stage_code: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(254))
    source: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        ForeignKeyConstraint(
            ["track_code", "stage_code"],
            ["track_stages.track_code", "track_stages.code"],
            name="fk_rollout_events_stage",
        ),
        # Doubles as the idempotency key of imports and the per-tenant timeline index.
        UniqueConstraint("tenant_id", "track_code", "occurred_at", "stage_code"),
        # No (track, occurred_at) index: no query reads events by time across tenants, and
        # every imported event paid for one (migration 0002).
    )


class CurrentState(Base):
    """One row per (tenant, track), maintained in the same transaction as each event.

    tier, region and account_manager are copied from the tenant so that every page's
    filter is answered from this table alone.
    """

    __tablename__ = "current_state"
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    track_code: Mapped[str] = mapped_column(ForeignKey("tracks.code"), primary_key=True)
    stage_code: Mapped[str] = mapped_column(String(32))
    # The last ordered stage reached; equals stage_code unless the tenant sits in a side stage.
    reached_stage_code: Mapped[str] = mapped_column(String(32))
    since: Mapped[datetime] = mapped_column(DateTime)
    last_event_id: Mapped[int | None] = mapped_column(BigId)
    note: Mapped[str] = mapped_column(Text, default="")
    tier: Mapped[str] = mapped_column(String(32))
    region: Mapped[str] = mapped_column(String(32))
    account_manager: Mapped[str] = mapped_column(String(254))

    __table_args__ = (
        Index("ix_current_state_track_stage_since", "track_code", "stage_code", "since"),
        # Stage reached and tier too: a manager's week-ago estimate reads the index alone (migration 0013).
        Index(
            "ix_current_state_track_manager_since",
            "track_code",
            "account_manager",
            "since",
            "stage_code",
            "reached_stage_code",
            "tier",
        ),
        Index("ix_current_state_track_since", "track_code", "since"),
    )


class StageCount(Base):
    """Live count of tenants per (track, stage, tier, region, account manager), kept with each event.

    The manager is in the key so that an account manager's numbers come from here too.
    """

    __tablename__ = "stage_counts"
    track_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    stage_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    tier: Mapped[str] = mapped_column(String(32), primary_key=True)
    region: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_manager: Mapped[str] = mapped_column(String(254), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)

    # A manager's reads find their own rows (migration 0012).
    __table_args__ = (Index("ix_stage_counts_manager_track", "account_manager", "track_code"),)


class StageTotal(Base):
    """stage_counts rolled up over managers: tenants per (track, stage, tier, region), kept with it.

    What every view without a manager reads: a few hundred rows where stage_counts has one
    per manager too (lockstep.services.counts keeps both; migration 0012 says why).
    """

    __tablename__ = "stage_totals"
    track_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    stage_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    tier: Mapped[str] = mapped_column(String(32), primary_key=True)
    region: Mapped[str] = mapped_column(String(32), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class ManagerCount(Base):
    """stage_counts rolled up over tier and region: tenants per (manager, track, stage), kept with it."""

    __tablename__ = "manager_counts"
    account_manager: Mapped[str] = mapped_column(String(254), primary_key=True)
    track_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    stage_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class FeatureCount(Base):
    """Live count of tenants per (track, stage, feature, account manager), kept with stage_counts.

    Every feature a tenant uses is counted, blocking or not, so a plan that changes a track's
    blocking features needs no recount; "what holds E2EE back" sums a few hundred rows instead
    of joining every feature row with current_state.
    """

    __tablename__ = "feature_counts"
    track_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    stage_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    feature: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_manager: Mapped[str] = mapped_column(String(254), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class SnapshotWeek(Base):
    """A closed week of one program: the counts of its tracks are frozen in weekly_snapshots."""

    __tablename__ = "snapshot_weeks"
    program_id: Mapped[str] = mapped_column(ForeignKey("program.id"), primary_key=True)
    week_start: Mapped[date] = mapped_column(Date, primary_key=True)
    closed_at: Mapped[datetime] = mapped_column(DateTime)
    closed_by: Mapped[str] = mapped_column(String(254))


class WeeklySnapshot(Base):
    """Counts as of the end of a closed ISO week.

    n_reported is frozen at close; n_current follows back-dated events recorded later,
    so a difference marks the number as restated.
    """

    __tablename__ = "weekly_snapshots"
    # The track decides the program; program_id is carried so that the row hangs off its
    # program's closed week (a composite foreign key), and one program's close or restatement
    # never touches another's rows.
    program_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    week_start: Mapped[date] = mapped_column(Date, primary_key=True)
    track_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    stage_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    tier: Mapped[str] = mapped_column(String(32), primary_key=True)
    region: Mapped[str] = mapped_column(String(32), primary_key=True)
    n_reported: Mapped[int] = mapped_column(BigInteger, default=0)
    n_current: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        ForeignKeyConstraint(
            ["program_id", "week_start"],
            ["snapshot_weeks.program_id", "snapshot_weeks.week_start"],
            name="fk_weekly_snapshots_week",
        ),
    )


class ShareLink(Base):
    """A read-only link to one tenant's status; only the token's hash is stored."""

    __tablename__ = "share_links"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(254))


class AuditEntry(Base):
    """One write, hash-chained: hash = sha256(prev_hash + canonical content)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(128))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    # HMAC-SHA256 of hash under the audit key (kept outside the database); NULL when written without one.
    mac: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id"),)


class AuditHead(Base):
    """A single row holding the chain's newest hash; updating it serialises writers."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class ApiToken(Base):
    """A bearer token for the ingest API; only the token's sha256 is stored.

    A token acts with its `role`; an account manager's token also names the manager
    (`user_email`) whose tenants it may see.
    """

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    user_email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    created_by: Mapped[str] = mapped_column(String(254))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(254))


class ApiIdempotency(Base):
    """The first answer to a request sent with an Idempotency-Key, per token, for a retry to repeat."""

    __tablename__ = "api_idempotency"
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Delivery(Base):
    """A report sent by e-mail: which kind, of which program, for which ISO week, to whom, when, by whom."""

    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(16))
    # The program the report or list was about: each program's week is sent once.
    program_id: Mapped[str | None] = mapped_column(ForeignKey("program.id"))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(300))
    sent_at: Mapped[datetime] = mapped_column(DateTime)
    sent_by: Mapped[str] = mapped_column(String(254))

    __table_args__ = (Index("ix_deliveries_kind_period", "kind", "period"),)
