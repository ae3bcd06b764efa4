"""Closing weeks: freeze tenants per (week, track, stage, tier, region) into weekly_snapshots.

A week's count is "as of the end of the ISO week" (Monday 00:00 UTC of the next week): a
tenant is in the stage of its latest event before that instant, or in the track's first
stage when it has none. That is the same rule `_restate_closed_weeks` in
`lockstep.services.rollout` uses to move n_current when a back-dated event arrives later,
so a restatement and a fresh close always agree.

Which tenants count in a week: every (tenant, track) with a current_state row that existed
by the week's end, i.e. whose tenant was added (created_at) or had its first event on the
track before it. Tenants are often loaded after the events they carry (an import of
history), so the first event dates them as well as created_at does; a tenant added after a
week closed, with no event before its end, was not there (the demo dates its tenants at the
program's start). Both dates count by the ISO week of their date part, like the events.

How, for many weeks at once (`counts_from_events`, a back-fill): a (tenant, track)'s stage
at a week's end is that of the last event of the latest week, up to that one, that has
events. Each (tenant, track)'s events are read as one short string of (week, stage)
numbers, oldest first, and numpy keeps the last event of each week: a move from the stage
at the previous asked week's end (+1 new, -1 old). A cumulative sum over the weeks, from
"everyone in the first stage", gives every asked week from one pass over the events. (The
LAG() window it replaces took 43 s at 20M events on SQLite, against 14 s; see
benchmarks/README.md.)

Programs: each program closes its own weeks (snapshot_weeks is keyed by program and week),
over its own tracks only; `program=None` means `default_program`. Closing a week of one
program neither closes nor restates another's.

How, for the week that has just ended (`counts_from_current_state`, the weekly close): a
current_state row whose `since` (the time of its latest event) is before the week's end
was in its present stage then. So the week's counts are today's (stage_counts), with only
the rows that moved since, found through the (track, since) index, replayed from their
events; the cost follows the tenants that moved, not the history. This relies on
current_state and stage_counts following every event, as every page of the dashboard
does. `as_of_counts` takes this path when at most half the rows moved after the first
asked week.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
from sqlalchemy import (
    Date,
    Integer,
    String,
    case,
    cast,
    distinct,
    func,
    insert,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from lockstep.clock import utcnow, week_end, week_label, week_start
from lockstep.errors import ValidationError
from lockstep.models import (
    CurrentState,
    Program,
    RolloutEvent,
    SnapshotWeek,
    StageTotal,
    Tenant,
    TrackStage,
    WeeklySnapshot,
)
from lockstep.permissions import Actor, require
from lockstep.queries.program import program_today, program_tracks, resolve_program
from lockstep.services import audit
from lockstep.services.locks import hold_rollout_gate
from lockstep.services.rollout import load_track_rules

Key = tuple[str, str, str, str]  # (track, stage, tier, region)

# Replay every event when more than this share of current_state moved after the first asked
# week's end. Measured at 100,000 tenants: with 27% moved the correction took 0.6 s against
# 1.4 s for the full replay, with 61% moved both took 1.4 s.
INCREMENTAL_SHARE = 0.5
CHUNK = 50_000  # current_state rows per fetch
PIECE_CHARS = 8_000_000  # of a (track, tier, region)'s token string parsed at once (~2M events)
_EPOCH = date(1900, 1, 1)  # a Monday: weeks are numbered from it
_JULIAN_EPOCH = 2415020  # SQLite julianday('1900-01-01') is 2415020.5
_TIED = "T"  # ends a SQLite token string whose (tenant, track) has two events at one instant
_START = -(10**9)  # leads each row's tokens when many rows share one string (a token is > -1000)
# A row's "born" token (the week its tenant was added: _BORN + week) follows its _START.
_BORN = -(10**8)
_BORN_BELOW = -(10**7)  # every born token is below this, every event token above


@dataclass(frozen=True)
class CloseResult:
    """One closed week of a program: how many snapshot rows were frozen and tenants per track."""

    week_start: date
    week_label: str
    rows: int
    totals: dict[str, int] = field(default_factory=dict)
    program: str = ""

    def __str__(self) -> str:
        tracks = ", ".join(f"{track} {n:,} tenants" for track, n in sorted(self.totals.items()))
        return f"{self.week_label} ({self.rows} rows: {tracks or 'no tenants'})"


def close_week(
    *, session: Session, actor: Actor, week_start: date, program: str | None = None
) -> CloseResult:
    """Freeze the program's counts as of the end of the ISO week starting on `week_start` (a Monday)."""
    require(actor, "snapshot.close")
    program = resolve_program(session=session, program=program)
    _check_monday(week_start)
    _check_ended(session, week_start, program)
    closed = session.get(SnapshotWeek, (program, week_start))
    if closed is not None:
        raise ValidationError(
            f"week {week_label(week_start)} was already closed in program {program!r} on "
            f"{closed.closed_at:%Y-%m-%d %H:%M} UTC "
            f"by {closed.closed_by}; a closed week stays as reported (later changes show as restatements)"
        )
    return _close(session, actor, [week_start], program)[0]


def close_latest_week(*, session: Session, actor: Actor, program: str | None = None) -> CloseResult:
    """Close the program's last week that has ended (capped at the program's today), if still open."""
    require(actor, "snapshot.close")
    program = resolve_program(session=session, program=program)
    monday = last_closable_week(session=session, program=program)
    if session.get(SnapshotWeek, (program, monday)) is not None:
        raise ValidationError(
            f"week {week_label(monday)} of program {program!r}, the last week that has ended, is already "
            "closed; nothing to close (use `snapshot backfill` to close earlier open weeks)"
        )
    return close_week(session=session, actor=actor, week_start=monday, program=program)


def backfill_weeks(
    *, session: Session, actor: Actor, through: date | None = None, program: str | None = None
) -> list[CloseResult]:
    """Close the program's open weeks from its first ISO week through `through` (default: last ended)."""
    require(actor, "snapshot.close")
    if session.scalar(select(func.count()).select_from(Program)) == 0:
        raise ValidationError(
            "there is no program in the database, so there are no weeks to close: "
            "run `python -m lockstep plan sync plan/90-day-plan.yaml` first"
        )
    program = resolve_program(session=session, program=program)
    start, end = session.execute(
        select(Program.start_date, Program.end_date).where(Program.id == program)
    ).one()
    if through is None:
        # A program's weeks are those of its window: one that ended long ago stops at its last week.
        last = min(last_closable_week(session=session, program=program), week_start(end))
    else:
        last = week_start(through)
        _check_ended(session, last, program)
    closed = set(session.scalars(select(SnapshotWeek.week_start).where(SnapshotWeek.program_id == program)))
    mondays = []
    monday = week_start(start)
    while monday <= last:
        if monday not in closed:
            mondays.append(monday)
        monday += timedelta(days=7)
    return _close(session, actor, mondays, program) if mondays else []


def last_closable_week(*, session: Session, program: str | None = None) -> date:
    """Monday of the newest week that has ended, both by the real clock and by the program's today.

    The program's today (LOCKSTEP_AS_OF, else the real date capped to the program's end) is
    the day in progress: a week ends at the Monday 00:00 after it, so the week holding today
    is still running. Closing it would freeze numbers an ordinary event of the same day
    would then "restate".
    """
    last_ended = week_start(utcnow().date()) - timedelta(days=7)
    return min(last_ended, week_start(program_today(session=session, program=program)) - timedelta(days=7))


def _check_monday(monday: date) -> None:
    if monday.weekday() != 0:
        raise ValidationError(
            f"{monday:%Y-%m-%d} is not a Monday; an ISO week starts on Monday "
            f"(that day is in {week_label(week_start(monday))}, which starts {week_start(monday):%Y-%m-%d})"
        )


def _check_ended(session: Session, monday: date, program: str) -> None:
    end = week_end(monday)
    if end > utcnow():
        raise ValidationError(
            f"week {week_label(monday)} has not ended yet (it ends {end:%Y-%m-%d %H:%M} UTC); "
            "only a finished week can be closed"
        )
    today = program_today(session=session, program=program)
    if end.date() > today:
        raise ValidationError(
            f"week {week_label(monday)} has not ended by the dashboard's today, {today:%Y-%m-%d} "
            f"(it ends {end:%Y-%m-%d %H:%M} UTC; today is LOCKSTEP_AS_OF, else the real date capped "
            "to the program's end); only a finished week can be closed"
        )


def _close(session: Session, actor: Actor, mondays: list[date], program: str) -> list[CloseResult]:
    """Compute the program's as-of counts of `mondays` in one pass, insert them and audit each week."""
    # No event may land between reading the counts and marking the weeks closed: it would be
    # in neither the frozen numbers nor a restatement (lockstep.services.locks).
    hold_rollout_gate(session, exclusive=True)
    mondays = sorted(mondays)
    counts = as_of_counts(session=session, mondays=mondays, program=program)
    now = utcnow()
    session.execute(
        insert(SnapshotWeek),
        [dict(program_id=program, week_start=m, closed_at=now, closed_by=actor.email) for m in mondays],
    )
    results = []
    for monday in mondays:
        rows = [
            {
                "program_id": program,
                "week_start": monday,
                "track_code": track,
                "stage_code": stage,
                "tier": tier,
                "region": region,
                "n_reported": n,
                "n_current": n,
            }
            for (track, stage, tier, region), n in sorted(counts[monday].items())
        ]
        if rows:
            session.execute(insert(WeeklySnapshot), rows)
        totals: dict[str, int] = defaultdict(int)
        for row in rows:
            totals[row["track_code"]] += row["n_reported"]
        result = CloseResult(monday, week_label(monday), len(rows), dict(totals), program)
        audit.append(
            session,
            actor,
            "snapshot.close_week",
            "week",
            result.week_label,
            after={"program": program, "rows": result.rows, "totals": result.totals},
        )
        results.append(result)
    return results


def as_of_counts(
    *, session: Session, mondays: list[date], program: str | None = None
) -> dict[date, dict[Key, int]]:
    """Tenants per (track, stage, tier, region) of the program's tracks at the end of each of `mondays`."""
    if not mondays:
        return {}
    mondays = sorted(set(mondays))
    tracks = program_tracks(session=session, program=program)
    total, moved = session.execute(
        select(func.count(), func.count().filter(CurrentState.since >= week_end(mondays[0]))).where(
            CurrentState.track_code.in_(tracks)
        )
    ).one()
    if moved <= total * INCREMENTAL_SHARE:
        return counts_from_current_state(session=session, mondays=mondays, program=program)
    return counts_from_events(session=session, mondays=mondays, program=program)


def counts_from_events(
    *, session: Session, mondays: list[date], program: str | None = None
) -> dict[date, dict[Key, int]]:
    """as_of_counts from the events alone: every (tenant, track) of the program's tracks replayed."""
    tally = _Tally(session, mondays, program_tracks(session=session, program=program))
    tally.add_timelines(session, None)
    return tally.result()


def counts_from_current_state(
    *, session: Session, mondays: list[date], program: str | None = None
) -> dict[date, dict[Key, int]]:
    """as_of_counts as today's counts, with the (tenant, track)s that moved since corrected from events.

    A current_state row whose `since` is before a week's end has had no event after it, so its
    stage then is its stage now; only the rows that moved later (few, for a week that just
    ended) are replayed from their events. Today's counts are stage_counts, which is
    current_state counted (kept with every write; a GROUP BY over current_state takes 3–6 s
    at a million tenants on SQLite).
    """
    mondays = sorted(mondays)
    tally = _Tally(session, mondays, program_tracks(session=session, program=program))
    sc = StageTotal  # stage_counts rolled up over managers
    for track, stage, tier, region, n in session.execute(
        select(sc.track_code, sc.stage_code, sc.tier, sc.region, func.sum(sc.n)).group_by(
            sc.track_code, sc.stage_code, sc.tier, sc.region
        )
    ):
        tally.add_constant(track, stage, tier, region, int(n))
    tally.add_timelines(session, week_end(mondays[0]))
    return tally.result()


class _Tally:
    """Per-week counts built from (tenant, track) timelines, in numpy.

    Events are read per (tenant, track) as one string of small integers (week * S + stage,
    oldest first), so a million tenants cost a few million Python objects, not 20 million
    rows. Within one week only the last event matters: the tenant's stage at the week's end
    replaces its stage at the previous end (+1 / -1), and a cumulative sum over the weeks
    turns those changes into counts.
    """

    def __init__(self, session: Session, mondays: list[date], tracks: list[str]) -> None:
        self.dialect = session.get_bind().dialect.name
        self.mondays = mondays
        # Only these tracks (one program's) are counted: every other row is skipped.
        rules = {code: r for code, r in load_track_rules(session).items() if r.stages and code in tracks}
        self.stages = sorted(
            set(session.scalars(select(TrackStage.code).distinct())) | {r.initial for r in rules.values()}
        )
        self.stage_index = {code: i for i, code in enumerate(self.stages)}
        self.initial = {code: self.stage_index[r.initial] for code, r in rules.items()}
        self.week0 = _week_number(mondays[0])
        # Week of each asked Monday, relative to the first; earlier events fold into the first.
        self.weeks = np.array([_week_number(m) - self.week0 for m in mondays], dtype=np.int64)
        self.keys: dict[tuple[str, str, str], int] = {}
        self.changes = np.zeros((0, len(mondays), len(self.stages)), dtype=np.int64)
        self.constant = np.zeros((0, len(self.stages)), dtype=np.int64)

    def _key(self, track: str, tier: str, region: str) -> int:
        k = self.keys.get((track, tier, region))
        if k is None:
            k = self.keys[(track, tier, region)] = len(self.keys)
            self.changes = np.concatenate([self.changes, np.zeros((1, *self.changes.shape[1:]), np.int64)])
            self.constant = np.concatenate([self.constant, np.zeros((1, len(self.stages)), np.int64)])
        return k

    def add_constant(self, track: str, stage: str, tier: str, region: str, n: int) -> None:
        """n tenants in `stage` at every asked week's end."""
        if track in self.initial:
            k = self._key(track, tier, region)  # may grow the arrays: before indexing them
            self.constant[k, self.stage_index[stage]] += n

    def add_timelines(self, session: Session, moved_since: datetime | None) -> None:
        """Replay every current_state row (or those whose `since` >= moved_since) from its events.

        A replayed row also leaves the constant part (its present stage), so that
        `add_constant` of all of current_state plus the replayed rows gives the as-of counts.
        """
        e, cs = RolloutEvent, CurrentState
        if moved_since is None and self.dialect != "sqlite":
            # All rows on PostgreSQL: one index-ordered pass over the events, grouped per
            # (tenant, track); current_state hashed beside it; and the rows' strings joined per
            # (track, tier, region), each row led by _START, so that Python handles ~50 rows
            # rather than 1.45M (a lookup per row took 13-30 s at 20M events, this ~9 s).
            per = (
                select(e.tenant_id, e.track_code, self._tokens().label("tokens"))
                .group_by(e.tenant_id, e.track_code)
                .subquery()
            )
            born = cast(self._born_week(Tenant.created_at) + _BORN, String)
            row = (
                literal(f"{_START},")
                .concat(born)
                .concat(func.coalesce(literal(",").concat(per.c.tokens), ""))
            )
            stmt = (
                select(cs.track_code, cs.tier, cs.region, func.string_agg(row, literal_column("','")))
                .join(Tenant, Tenant.id == cs.tenant_id)
                .outerjoin(per, (per.c.tenant_id == cs.tenant_id) & (per.c.track_code == cs.track_code))
                .group_by(cs.track_code, cs.tier, cs.region)
            )
            result = session.connection().execute(stmt.execution_options(yield_per=1))
            for track, tier, region, tokens in result:
                if track not in self.initial:
                    continue
                k, lead = self._key(track, tier, region), f",{_START},"
                start = 0
                while start < len(tokens):  # in pieces that end before a row, to bound the arrays
                    end = tokens.find(lead, start + PIECE_CHARS)
                    end = len(tokens) if end < 0 else end
                    values = np.fromstring(tokens[start:end], dtype=np.int64, sep=",")
                    is_born = (values < _BORN_BELOW) & (values != _START)
                    born, values = values[is_born] - _BORN, values[~is_born]
                    first = np.full(len(born), self.initial[track], np.int64)
                    self._fold(np.full(len(born), k, np.int64), first, born, values)
                    start = end + 1
            return
        # Otherwise a lookup into the event index per current_state row. For all rows (SQLite),
        # the table's stored order is about tenant order, so the lookups walk the index nearly
        # in its own order; the moved rows come through the (track, since) index.
        tokens = self._tokens()
        stmt = select(
            cs.tenant_id,
            cs.track_code,
            cs.tier,
            cs.region,
            cs.stage_code,
            select(tokens)
            .where(e.tenant_id == cs.tenant_id, e.track_code == cs.track_code)
            .scalar_subquery(),
            select(self._born_week(Tenant.created_at)).where(Tenant.id == cs.tenant_id).scalar_subquery(),
        )
        if moved_since is not None:
            stmt = stmt.where(cs.track_code.in_(list(self.initial)), cs.since >= moved_since)
        replayed = moved_since is not None
        tied = []
        result = session.connection().execute(stmt.execution_options(yield_per=CHUNK))
        for rows in result.partitions():
            rows = [r for r in rows if r[1] in self.initial]
            tied += [r for r in rows if r[5] and r[5][-1] == _TIED]
            rows = [r for r in rows if not (r[5] and r[5][-1] == _TIED)]
            self._add(rows, [r[5] for r in rows], replayed)
        result.close()
        if tied:
            self._add(tied, self._exact_tokens(session, tied), replayed)

    def _add(self, rows: list, tokens: list, replayed: bool) -> None:
        """Fold a batch of rows (tenant, track, tier, region, present stage, tokens, born week) and tokens."""
        if not rows:
            return
        key = np.fromiter((self._key(r[1], r[2], r[3]) for r in rows), np.int64, len(rows))
        first = np.fromiter((self.initial[r[1]] for r in rows), np.int64, len(rows))
        born = np.fromiter((r[6] for r in rows), np.int64, len(rows))
        if replayed:
            present = np.fromiter((self.stage_index[r[4]] for r in rows), np.int64, len(rows))
            np.add.at(self.constant, (key, present), -1)
        lead = str(_START)
        values = np.fromstring(
            ",".join([lead + "," + t if t else lead for t in tokens]), dtype=np.int64, sep=","
        )
        self._fold(key, first, born, values)

    def _fold(self, key: np.ndarray, first: np.ndarray, born: np.ndarray, values: np.ndarray) -> None:
        """Add rows to the weekly changes: `values` holds each row's event tokens, led by _START.

        key, first (the track's first stage) and born (the week its tenant was added, relative
        to the first asked week, -1 for earlier) are per row, in the order of the rows.
        """
        n_weeks, n_stages = len(self.mondays), len(self.stages)
        flat = np.zeros(len(self.keys) * n_weeks * n_stages, dtype=np.int64)
        lead = values == _START
        row = np.cumsum(lead) - 1
        row, values = row[~lead], values[~lead]
        # A row exists from its tenant's added week or its first event's, whichever is earlier
        # (events are oldest first, so a row's first token is its first event) ...
        starts = born.copy()
        first_token = np.ones(len(row), dtype=bool)
        first_token[1:] = row[1:] != row[:-1]
        np.minimum.at(starts, row[first_token], values[first_token] // n_stages)
        start_week = np.searchsorted(self.weeks, starts, side="left")
        there = start_week < n_weeks
        # ... in the first stage of the track from the end of that week ...
        flat += np.bincount(((key * n_weeks + start_week) * n_stages + first)[there], minlength=len(flat))
        # ... and each week's last event moves it from where it stood at the previous week's end.
        week = np.searchsorted(self.weeks, values // n_stages, side="left")
        stage = values % n_stages
        keep = week < n_weeks  # after the last asked week: never applied
        row, week, stage = row[keep], week[keep], stage[keep]
        last = np.ones(len(row), dtype=bool)
        last[:-1] = (row[1:] != row[:-1]) | (week[1:] != week[:-1])
        row, week, stage = row[last], week[last], stage[last]
        before = np.empty_like(stage)
        before[1:] = stage[:-1]
        new_row = np.ones(len(row), dtype=bool)
        new_row[1:] = row[1:] != row[:-1]
        before[new_row] = first[row[new_row]]
        at = (key[row] * n_weeks + week) * n_stages
        flat += np.bincount(at + stage, minlength=len(flat))
        flat -= np.bincount(at + before, minlength=len(flat))
        self.changes += flat.reshape(len(self.keys), n_weeks, n_stages)

    def _born_week(self, at):
        """SQL: the week of a timestamp's date, relative to the first asked week (earlier: -1)."""
        if self.dialect == "sqlite":
            days = cast(func.julianday(func.substr(at, 1, 10)), Integer) - _JULIAN_EPOCH
            return func.max(days // 7 - self.week0, -1)
        return func.greatest((cast(at, Date) - _EPOCH) // 7 - self.week0, -1)

    def _tokens(self):
        """SQL aggregate: a (tenant, track)'s events as 'week * S + stage,...', oldest first.

        Weeks count from the first asked Monday, earlier ones as -1. On SQLite the events
        come in the order of the unique index, (occurred_at, stage_code); a (tenant, track)
        with two events at one instant ends in ',T' and is read again in (occurred_at, id)
        order by `_exact_tokens`.
        """
        e = RolloutEvent
        n_stages = len(self.stages)
        stage = case(self.stage_index, value=e.stage_code, else_=0)
        if self.dialect == "sqlite":
            # From the date part alone, in whole days: julianday() of a full timestamp rounds
            # to the millisecond and could carry Sunday 23:59:59.9999 into Monday.
            days = cast(func.julianday(func.substr(e.occurred_at, 1, 10)), Integer) - _JULIAN_EPOCH
            week = func.max(days // 7 - self.week0, -1)
            tied = case((func.count() > func.count(distinct(e.occurred_at)), "," + _TIED), else_="")
            return func.group_concat(week * n_stages + stage).concat(tied)
        days = cast(e.occurred_at, Date) - _EPOCH
        week = func.greatest(days // 7 - self.week0, -1)
        return func.string_agg(
            cast(week * n_stages + stage, String),
            aggregate_order_by(literal_column("','"), e.occurred_at, e.id),
        )

    def _exact_tokens(self, session: Session, rows: list) -> list[str]:
        """Token strings of the given (tenant, track)s, read in (occurred_at, id) order."""
        e = RolloutEvent
        n_stages = len(self.stages)
        wanted = {(r[0], r[1]) for r in rows}
        found: dict[tuple[int, str], list[str]] = {pair: [] for pair in wanted}
        tenants = sorted({r[0] for r in rows})
        for i in range(0, len(tenants), 500):
            for tenant_id, track, at, stage in session.execute(
                select(e.tenant_id, e.track_code, e.occurred_at, e.stage_code)
                .where(e.tenant_id.in_(tenants[i : i + 500]))
                .order_by(e.tenant_id, e.track_code, e.occurred_at, e.id)
            ):
                if (tenant_id, track) in wanted:
                    week = max(_week_number(at.date()) - self.week0, -1)
                    found[(tenant_id, track)].append(str(week * n_stages + self.stage_index[stage]))
        return [",".join(found[(r[0], r[1])]) for r in rows]

    def result(self) -> dict[date, dict[Key, int]]:
        """{monday: {(track, stage, tier, region): tenants}}, zero counts left out."""
        counts = np.cumsum(self.changes, axis=1) + self.constant[:, None, :]
        keys = sorted(self.keys.items(), key=lambda kv: kv[1])
        out: dict[date, dict[Key, int]] = {}
        for w, monday in enumerate(self.mondays):
            out[monday] = {
                (track, self.stages[s], tier, region): int(counts[k, w, s])
                for (track, tier, region), k in keys
                for s in np.flatnonzero(counts[k, w])
            }
        return out


def _week_number(d: date) -> int:
    """Weeks since the Monday 1900-01-01."""
    return (d - _EPOCH).days // 7
