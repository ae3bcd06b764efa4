"""Bulk imports of tenants and rollout events, from CSV files or in-memory frames.

Every import has two phases. The first reads the whole input in chunks and validates
every row against the database (nothing is written); any bad value rejects the import
with ImportRejected listing each bad row. The second writes everything in the same
transaction: rows, current state, stage counts and one audit entry.

Re-importing a file adds nothing: a tenant identical to the stored one and an event
already stored (same tenant, track, time and stage) are skipped, and an import that
changes nothing writes nothing at all, not even an audit entry.

File formats: docs/csv-formats.md.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from lockstep import csvio, xlsxio
from lockstep.clock import utcnow, week_end
from lockstep.db import write_transaction
from lockstep.errors import ErrorGroup, ImportRejected, RowError
from lockstep.models import (
    CurrentState,
    RolloutEvent,
    SnapshotWeek,
    Tenant,
    TenantFeature,
    Tier,
)
from lockstep.permissions import Actor, require
from lockstep.rollout_rules import BLOCKED, RuleViolation, State, TrackRules, apply_event, initial_state
from lockstep.services import audit
from lockstep.services.counts import Touched, counts_follow
from lockstep.services.locks import hold_rollout_gate
from lockstep.services.rollout import FUTURE_TOLERANCE, _restate_closed_weeks, load_track_rules
from lockstep.sqlutil import WRITE_CHUNK, bulk_insert

Progress = Callable[[int, int | None], None]

TENANT_COLUMNS = (
    "external_id",
    "name",
    "tier",
    "region",
    "seats",
    "account_manager",
    "client_version",
    "features",
)
EVENT_COLUMNS = ("tenant_id", "track", "stage", "occurred_at")
EVENT_OPTIONAL = ("source", "note")
DEFAULT_SOURCE = "import"
ERROR_CAP = 50
# The summary names this many rows per column and reason.
SUMMARY_ROWS = 5
# Validation memory is one chunk of text at a time; writes go in batches this size.
FRAME_CHUNK = 100_000
# Above this many tenants, one scan beats batches of `IN (...)` look-ups.
SCAN_AT = 20_000
IN_BATCH = 500
FETCH_BATCH = 50_000
# SQLite bulk loads: from this many new events, plain indexes are rebuilt once (see _sqlite_bulk_load).
BULK_LOAD_AT = 50_000
BULK_CACHE_KIB = 64 * 1024
MAX_SEATS = 2_147_483_647
MAX_LEN = {
    "external_id": 64,
    "name": 200,
    "tier": 32,
    "region": 32,
    "account_manager": 254,
    "client_version": 32,
    "features": 2000,
    "source": 64,
    # A note is what a person typed about one event; 4,000 characters is two pages of text.
    "note": 4000,
}
FEATURE_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
VERSION = r"^\d+(\.\d+)*$"
WHOLE_NUMBER = r"^\d{1,12}$"
# Marks a side stage (blocked, rolled_back) in the stage-position table of the rule check.
SIDE = 1000


@dataclass
class ImportResult:
    """What an import did: data rows read, rows added, rows updated, rows skipped as already there."""

    kind: str
    added: int
    skipped: int
    updated: int = 0
    rows: int = 0

    def __str__(self) -> str:
        return (
            f"{self.kind}: {self.rows} row(s) read; added {self.added}, updated {self.updated}, "
            f"skipped {self.skipped} already present"
        )


# --------------------------------------------------------------------------- public API


def import_tenants(
    *,
    engine,
    path,
    actor: Actor,
    progress: Progress | None = None,
    sheet: str | None = None,
    keep_all_errors: bool = False,
) -> ImportResult:
    """Validate a tenants CSV or XLSX file, then add new tenants and update changed ones in one transaction.

    `sheet` picks an XLSX sheet (default the first); `keep_all_errors` puts every bad value
    on the ImportRejected (`every_error`), not just the first ERROR_CAP.
    """
    require(actor, "import.run")
    source = _open(path, TENANT_COLUMNS, sheet=sheet)
    return write_transaction(
        lambda session: _import_tenants(
            session,
            source.chunks(),
            actor,
            str(path),
            source.path.name,
            source.sha256,
            _Progress(progress, source.approx_rows),
            keep_all_errors=keep_all_errors,
        ),
        engine=engine,
    )


def import_events(
    *,
    engine,
    path,
    actor: Actor,
    progress: Progress | None = None,
    date_format: str | None = None,
    sheet: str | None = None,
    keep_all_errors: bool = False,
) -> ImportResult:
    """Validate a rollout events CSV or XLSX file against the rules and stored events, then add them.

    `date_format` adds one date layout to ISO 8601 (a strptime pattern such as '%d/%m/%Y',
    or 'excel' for serial day numbers; see csvio.parse_timestamps); `sheet` and
    `keep_all_errors` as for import_tenants.
    """
    require(actor, "import.run")
    csvio.check_date_format(date_format)
    source = _open(path, EVENT_COLUMNS, EVENT_OPTIONAL, sheet=sheet)
    return write_transaction(
        lambda session: _import_events(
            session,
            source.chunks(),
            actor,
            str(path),
            source.path.name,
            source.sha256,
            _Progress(progress, source.approx_rows),
            date_format=date_format,
            keep_all_errors=keep_all_errors,
        ),
        engine=engine,
    )


def import_tenant_frame(
    *,
    session: Session,
    frame: pd.DataFrame,
    actor: Actor,
    source_name: str,
    created_at: datetime | None = None,
    keep_all_errors: bool = False,
) -> ImportResult:
    """Import tenants from a frame with the CSV columns, inside the caller's transaction.

    `created_at` dates new tenants (default: now); the demo dates them at the program start
    so a tenant without events is not shown as having arrived after its own history.
    """
    require(actor, "import.run")
    _check_frame_columns(frame, TENANT_COLUMNS, (), source_name)
    return _import_tenants(
        session,
        _frame_chunks(frame),
        actor,
        source_name,
        source_name,
        _frame_digest(frame),
        _Progress(None, len(frame)),
        created_at=created_at,
        keep_all_errors=keep_all_errors,
    )


def import_event_frame(
    *,
    session: Session,
    frame: pd.DataFrame,
    actor: Actor,
    source_name: str,
    date_format: str | None = None,
    keep_all_errors: bool = False,
) -> ImportResult:
    """Import rollout events from a frame with the CSV columns, inside the caller's transaction.

    Values may be text (as in a file: the same rules apply) or, for occurred_at, datetimes.
    """
    require(actor, "import.run")
    csvio.check_date_format(date_format)
    _check_frame_columns(frame, EVENT_COLUMNS, EVENT_OPTIONAL, source_name)
    return _import_events(
        session,
        _frame_chunks(frame),
        actor,
        source_name,
        source_name,
        _frame_digest(frame),
        _Progress(None, len(frame)),
        date_format=date_format,
        keep_all_errors=keep_all_errors,
    )


def import_event_rows(
    *,
    session: Session,
    rows: Sequence[Any],
    actor: Actor,
    source_name: str,
    default_source: str = DEFAULT_SOURCE,
) -> ImportResult:
    """Import rollout events given as parsed records (a JSON list), inside the caller's transaction.

    Each record maps the events CSV's column names to text and is numbered from 1 in the
    order given. A record that is not an object, a field the CSV does not have, or a value
    that is not text is reported like a bad CSV cell; the rest are the CSV import's checks.
    An empty `source` becomes `default_source`.
    """
    require(actor, "import.run")
    frame = _records_frame(rows, EVENT_COLUMNS + EVENT_OPTIONAL, source_name, default_source)
    return _import_events(
        session,
        _frame_chunks(frame, first_row=1),
        actor,
        source_name,
        source_name,
        _frame_digest(frame),
        _Progress(None, len(frame)),
    )


# --------------------------------------------------------------------------- input plumbing


def _records_frame(rows: Sequence[Any], fields: tuple[str, ...], source_name: str, default_source: str):
    """The records as a frame of text with every field; shape errors reject at once (rows from 1)."""
    errors = _Errors(fields)
    values: dict[str, list[str]] = {f: [] for f in fields}
    for n, record in enumerate(rows, start=1):
        if not isinstance(record, dict):
            errors.add(n, "", record, f"not an object with the fields {', '.join(fields)}", "not an object")
            continue
        for key, value in record.items():
            if key not in values:
                close = difflib.get_close_matches(str(key), fields, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'?" if close else f"fields: {', '.join(fields)}"
                errors.add(n, str(key), key, f"unknown field ({hint})", "unknown field")
            elif value is not None and not isinstance(value, str):
                errors.add(n, key, value, "must be text (a JSON string)", "not text")
        for f in fields:
            value = record.get(f)
            values[f].append(value if isinstance(value, str) else "")
    errors.raise_if_any(source_name)
    frame = pd.DataFrame(values, dtype="str")
    if "source" in frame:
        frame["source"] = frame["source"].where(frame["source"].str.strip() != "", default_source)
    return frame


@dataclass
class _Source:
    """An import file opened and its header checked: where its rows come from, and what it is."""

    path: Path
    sha256: str
    approx_rows: int
    chunks: Callable[[], Iterator[tuple[pd.DataFrame, np.ndarray]]]


def _open(
    path, required: tuple[str, ...], optional: tuple[str, ...] = (), sheet: str | None = None
) -> _Source:
    """Inspect a CSV or XLSX file and check its header; ImportRejected (nothing read) when either fails."""
    path = Path(path)
    try:
        if xlsxio.is_workbook(path):
            book = xlsxio.inspect_workbook(path, sheet)
            columns, source = (
                book.columns,
                _Source(path, book.sha256, book.approx_rows, lambda: xlsxio.iter_chunks(book)),
            )
        else:
            if sheet is not None:
                raise csvio.FileRejected([RowError(0, "", sheet, "--sheet applies to XLSX files only")])
            if xlsxio.looks_like_zip(path):
                why = "is a ZIP archive (an XLSX workbook?): name it .xlsx to import a sheet"
                raise csvio.FileRejected([RowError(0, "", "", why)])
            info = csvio.inspect_file(path)
            columns, source = (
                info.columns,
                _Source(path, info.sha256, info.approx_rows, lambda: csvio.iter_chunks(info)),
            )
    except csvio.FileRejected as exc:
        _reject(str(path), exc.errors)
    _reject(str(path), csvio.check_header(columns, required, optional))
    return source


def _reject(path: str, found: list[RowError]) -> None:
    """ImportRejected for errors found before any row was read (the file or its header); none: return."""
    errors = _Errors((), keep_all=True)
    for e in found:
        errors.add(e.row, e.column, e.value, e.reason, e.kind)
    errors.raise_if_any(path)


def _check_frame_columns(frame: pd.DataFrame, required, optional, source_name: str) -> None:
    columns = tuple(str(c).strip().lower() for c in frame.columns)
    _reject(source_name, csvio.check_header(columns, required, optional))


def _frame_chunks(frame: pd.DataFrame, first_row: int = 2) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    # Rows are numbered as if the frame were written to a file with a header (first row is 2);
    # records (import_event_rows) are numbered from 1, as they were sent.
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    for start in range(0, len(frame), FRAME_CHUNK):
        part = frame.iloc[start : start + FRAME_CHUNK]
        cols = {}
        for name in part.columns:
            col = part[name]
            if name == "occurred_at" and pd.api.types.is_datetime64_any_dtype(col.dtype):
                cols[name] = col.reset_index(drop=True)
            elif name == "features" and col.dtype == object:
                cols[name] = pd.Series(
                    [
                        "|".join(v) if isinstance(v, list | tuple | set) else ("" if v is None else str(v))
                        for v in col
                    ],
                    dtype="str",
                ).str.strip()
            else:
                cols[name] = col.astype("str").fillna("").str.strip().reset_index(drop=True)
        first = start + first_row
        yield pd.DataFrame(cols), np.arange(first, first + len(part), dtype=np.int64)


def _frame_digest(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame.astype("str"), index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


class _Progress:
    """progress(done, total): the first half of `total` is validation, the second writing."""

    def __init__(self, callback: Progress | None, total: int | None):
        self.callback, self.total = callback, total
        self.validated = self.written = 0

    def validate(self, n: int) -> None:
        self.validated += n
        self._emit()

    def write(self, n: int) -> None:
        self.written += n
        self._emit()

    def finish(self, rows: int) -> None:
        self.total = self.validated = self.written = rows
        self._emit()

    def _emit(self) -> None:
        if self.callback is None:
            return
        total = max(self.total, self.validated) if self.total is not None else None
        self.callback((self.validated + self.written) // 2, total)


class _Errors:
    """Every bad value is counted by (column, kind); the `cap` earliest are kept to report.

    With `keep_all` every bad value is also kept, message and all (the --errors-out file).
    """

    def __init__(self, columns: tuple[str, ...], cap: int = ERROR_CAP, keep_all: bool = False):
        # A problem with the whole record (column "") comes before the values in it.
        self.order = {"": -1} | {c: i for i, c in enumerate(columns)}
        self.cap = cap
        self.total = 0
        self.kept: list[RowError] = []
        self.every: list[RowError] | None = [] if keep_all else None
        # (column, kind) -> [count, smallest rows so far]
        self.groups: dict[tuple[str, str], list] = {}

    def add(self, row: int, column: str, value: Any, reason: str, kind: str = "") -> None:
        error = RowError(int(row), column, _show(value), reason, kind)
        self.total += 1
        self.kept.append(error)
        if self.every is not None:
            self.every.append(error)
        self._count(column, error.group, np.asarray([int(row)]))
        if len(self.kept) > 4 * self.cap:
            self._trim()

    def add_mask(
        self,
        rows: np.ndarray,
        mask: np.ndarray,
        column: str,
        values: pd.Series | np.ndarray,
        reason: str | Callable[[int], str],
        kind: str = "",
    ) -> None:
        """Count every row in `mask`; materialise messages for the earliest `cap` only (all with keep_all)."""
        hits = np.flatnonzero(mask)
        if not len(hits):
            return
        self.total += len(hits)
        kind = kind or (reason if isinstance(reason, str) else "")
        ordered = hits[np.argsort(rows[hits], kind="stable")]
        self._count(column, kind, rows[ordered[:SUMMARY_ROWS]], len(hits))
        for n, i in enumerate(ordered if self.every is not None else ordered[: self.cap]):
            why = reason(int(i)) if callable(reason) else reason
            value = values.iloc[i] if isinstance(values, pd.Series) else values[i]
            error = RowError(int(rows[i]), column, _show(value), why, kind)
            if n < self.cap:
                self.kept.append(error)
            if self.every is not None:
                self.every.append(error)
        self._trim()

    def _count(self, column: str, kind: str, first_rows: np.ndarray, n: int = 1) -> None:
        group = self.groups.setdefault((column, kind), [0, []])
        group[0] += n
        group[1] = sorted(group[1] + [int(r) for r in first_rows])[:SUMMARY_ROWS]

    def _trim(self) -> None:
        self.kept.sort(key=lambda e: (e.row, self.order.get(e.column, len(self.order))))
        del self.kept[self.cap :]

    def summary(self) -> list[ErrorGroup]:
        """One line per (column, kind), most frequent first."""
        groups = [ErrorGroup(c, k, n, rows) for (c, k), (n, rows) in self.groups.items()]
        return sorted(groups, key=lambda g: (-g.count, g.first_rows[:1], g.column))

    def raise_if_any(self, path: str) -> None:
        if self.total:
            self._trim()
            every = None
            if self.every is not None:
                every = sorted(self.every, key=lambda e: (e.row, self.order.get(e.column, len(self.order))))
            raise ImportRejected(path, list(self.kept), self.total, self.cap, self.summary(), every)


def _show(value: Any) -> str:
    text_value = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    return text_value if len(text_value) <= 80 else text_value[:77] + "..."


def _read_all(
    chunks: Iterator[tuple[pd.DataFrame, np.ndarray]], check, errors: _Errors, path: str, progress: _Progress
) -> int:
    """Feed every chunk to `check`; a file that is not a table at all rejects at once."""
    rows = 0
    try:
        for frame, numbers in chunks:
            check(frame, numbers)
            rows += len(frame)
            progress.validate(len(frame))
    except csvio.FileRejected as exc:
        for e in exc.errors:
            errors.add(e.row, e.column, e.value, e.reason, e.kind)
    return rows


def _missing(frame: pd.DataFrame, rows: np.ndarray, columns: Iterable[str], errors: _Errors) -> np.ndarray:
    ok = np.ones(len(frame), dtype=bool)
    for col in columns:
        empty = (frame[col] == "").to_numpy()
        errors.add_mask(rows, empty, col, frame[col], "missing required value")
        ok &= ~empty
    return ok


def _too_long(frame: pd.DataFrame, rows: np.ndarray, columns: Iterable[str], errors: _Errors) -> np.ndarray:
    ok = np.ones(len(frame), dtype=bool)
    for col in columns:
        long_ = (frame[col].str.len() > MAX_LEN[col]).to_numpy()
        errors.add_mask(rows, long_, col, frame[col], f"text too long (at most {MAX_LEN[col]} characters)")
        ok &= ~long_
    return ok


def _no_control_chars(
    frame: pd.DataFrame, rows: np.ndarray, columns: Iterable[str], errors: _Errors
) -> np.ndarray:
    """Refuse NUL and the other control characters (tab and line breaks are fine).

    PostgreSQL cannot store NUL in text at all and SQLite would store it silently; an ESC
    in a name would reach every terminal that prints it.
    """
    ok = np.ones(len(frame), dtype=bool)
    for col in columns:
        if col not in frame or frame[col].dtype.kind == "M":
            continue
        hit = _matches(frame[col], csvio.CONTROL_CHARS)
        errors.add_mask(
            rows,
            hit,
            col,
            frame[col],
            lambda i, col=col: (
                f"contains the control character {_first_control(frame[col].iloc[i])}: "
                "remove it (binary data, or a file saved in another encoding?)"
            ),
            kind="control character (NUL, ESC, ...)",
        )
        ok &= ~hit
    return ok


def _first_control(value: str) -> str:
    found = re.search(csvio.CONTROL_CHARS, value)
    return f"U+{ord(found.group()):04X}" if found else "?"


def _lookup(values: pd.Series, known: pa.Array) -> np.ndarray:
    """Position of each value in `known`, -1 when absent."""
    found = pc.index_in(pa.array(values, type=pa.string()), value_set=known)
    return np.asarray(found.fill_null(-1), dtype=np.int64)


def _matches(values: pd.Series, pattern: str) -> np.ndarray:
    return np.asarray(pc.match_substring_regex(pa.array(values, type=pa.string()), pattern), dtype=bool)


# --------------------------------------------------------------------------- SQL plumbing


@contextmanager
def _sqlite_bulk_load(session: Session, table: Table, changing: int) -> Iterator[None]:
    """On SQLite, for a load that is large next to the table, rebuild its plain indexes once.

    Inserting events in tenant order keeps the unique index's inserts sequential, but the
    (track, occurred_at) index then takes them at random places: measured at 1,000,000
    rows that is two thirds of the insert time, while building the index afterwards takes
    two or three seconds. The same holds for current_state's (track, since) index when
    most states move. The drop and the re-create are in the import's own transaction, so
    other connections (WAL readers) never see the table without its index, and a failed
    import rolls both back. Unique indexes stay: they are what makes a repeat impossible.
    PostgreSQL is left alone: DROP INDEX there would lock readers out until commit.
    """
    conn = session.connection()
    if conn.dialect.name != "sqlite" or changing < BULK_LOAD_AT:
        yield
        return
    existing = conn.execute(select(func.max(literal_column("rowid"))).select_from(table)).scalar() or 0
    indexes = []
    if changing * 4 >= existing:
        indexes = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
            (table.name,),
        ).all()
        indexes = [(name, sql) for name, sql in indexes if not sql.upper().startswith("CREATE UNIQUE")]
    cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    # A bigger page cache for this connection while the load runs: fewer spills mid-transaction.
    conn.exec_driver_sql(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    for name, _ in indexes:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    try:
        yield
    finally:
        for _, sql in indexes:
            conn.exec_driver_sql(sql)
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(cache)}")


def _pause_search_trigger(session: Session, adding: int) -> str | None:
    """On SQLite, before a large tenant load, drop the search index's per-row trigger; returns its SQL.

    The trigger of migration 0005 indexes each inserted tenant on its own: importing 156,251
    tenants took 11.1 s with it against 5.0-5.6 s with no search index (5.4 s this way, see
    benchmarks/README.md). For a large load _index_new_tenants then adds the new tenants in
    one INSERT … SELECT and re-creates the trigger, all inside the import's transaction:
    other connections never see the trigger missing, and a failed import rolls it all back.
    None: nothing dropped (PostgreSQL, a small load, or a database from before migration 0005).
    """
    conn = session.connection()
    if conn.dialect.name != "sqlite" or adding < BULK_LOAD_AT:
        return None
    trigger = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'tenants_fts_insert'"
    ).scalar()
    if trigger is not None:
        conn.exec_driver_sql("DROP TRIGGER tenants_fts_insert")
    return trigger


def _index_new_tenants(session: Session, trigger: str | None, after_id: int) -> None:
    """Add the tenants with ids above `after_id` to the search index and re-create `trigger`.

    Only the new rows are read; an FTS5 'rebuild' would re-read every tenant already there.
    """
    if trigger is None:
        return
    conn = session.connection()
    conn.exec_driver_sql(
        "INSERT INTO tenants_fts (rowid, name, external_id) "
        "SELECT id, name, external_id FROM tenants WHERE id > ?",
        (after_id,),
    )
    conn.exec_driver_sql(trigger)


def _refresh_statistics(session: Session, changed: int) -> None:
    """After a large load, refresh the planner's statistics so the dashboard's plans fit the new data.

    Without statistics SQLite guesses, and with many tenants it guessed wrong (a manager's
    rows through the (track, since) index instead of the manager index). A sampled SQLite
    ANALYZE (analysis_limit) is no help: its first thousand index entries share one manager.
    So the tables the dashboard reads are analysed in full (about 0.3 s per 100,000 tenants);
    rollout_events, read per tenant through its unique index only, is left out. PostgreSQL's
    ANALYZE samples anyway. Small loads are left to autovacuum and SQLite's existing numbers.
    """
    if changed < BULK_LOAD_AT:
        return
    conn = session.connection()
    tables = ["tenants", "tenant_features", "current_state", "stage_counts"]
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA analysis_limit = 0")
    else:
        tables.append("rollout_events")
    for table in tables:
        conn.exec_driver_sql(f"ANALYZE {table}")


def _lock(session: Session, table: str) -> None:
    # PostgreSQL: keep concurrent writers of this table out between validation and write
    # (reads go on). SQLite's write session already holds the database's write lock.
    # The rollout gate comes first, before any other lock, as for every rollout writer
    # (lockstep.services.locks): a single event then waits for the import or the import
    # for it, and neither holds a row the other needs.
    hold_rollout_gate(session, exclusive=True)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))


def _for_tenants(session: Session, stmt, column, tenant_ids: np.ndarray) -> list:
    """Rows of `stmt` for these tenant ids (see _tenant_batches)."""
    return list(itertools.chain.from_iterable(_tenant_batches(session, stmt, column, tenant_ids)))


def _tenant_batches(session: Session, stmt, column, tenant_ids: np.ndarray) -> Iterator[list]:
    """Rows of `stmt` for these tenant ids in batches: IN look-ups, or one streamed scan if many."""
    ids = np.unique(tenant_ids)
    if len(ids) == 0:
        return
    # Core execution on the session's connection: no ORM row processing on large reads.
    conn = session.connection()
    if len(ids) > SCAN_AT:
        wanted = set(ids.tolist())
        result = conn.execute(stmt.execution_options(stream_results=True, yield_per=FETCH_BATCH))
        for part in result.partitions(FETCH_BATCH):
            yield [r for r in part if r[0] in wanted]
        return
    for start in range(0, len(ids), IN_BATCH):
        yield conn.execute(stmt.where(column.in_(ids[start : start + IN_BATCH].tolist()))).all()


def _stamps(values: tuple) -> np.ndarray:
    """Stored times read as text (cheaper than a datetime object per row) to microseconds since the epoch."""
    parsed = pd.to_datetime(pd.Series(values, dtype="str"), format="ISO8601")
    return parsed.to_numpy(dtype="datetime64[us]").astype(np.int64)


def _now_text(at: datetime | None = None) -> tuple[datetime, str]:
    now = at or utcnow()
    return now, csvio.format_timestamps(np.array([now], dtype="datetime64[us]"))[0]


def _audit(session, actor, kind: str, name: str, sha256: str, result: ImportResult) -> None:
    audit.append(
        session,
        actor,
        f"import.{kind}",
        "import",
        name[:128],
        after={
            "file": name,
            "sha256": sha256,
            "rows": result.rows,
            "added": result.added,
            "skipped": result.skipped,
            "updated": result.updated,
        },
    )


# --------------------------------------------------------------------------- tenants


class _TenantCheck:
    """Row checks for a tenants file; keeps the valid rows, normalised, for the write phase."""

    def __init__(self, session: Session, errors: _Errors):
        self.errors = errors
        self.tiers = session.scalars(select(Tier.code).order_by(Tier.position, Tier.code)).all()
        self.tier_set = pa.array(self.tiers, type=pa.string())
        self.parts: list[pd.DataFrame] = []
        self.ids: list[pd.DataFrame] = []

    def __call__(self, frame: pd.DataFrame, rows: np.ndarray) -> None:
        err = self.errors
        ok = _missing(frame, rows, TENANT_COLUMNS[:6], err)
        ok &= _too_long(
            frame,
            rows,
            ("external_id", "name", "region", "account_manager", "client_version", "features"),
            err,
        )
        ok &= _no_control_chars(frame, rows, TENANT_COLUMNS, err)
        tier_ix = _lookup(frame["tier"], self.tier_set)
        bad = (tier_ix < 0) & (frame["tier"] != "").to_numpy()
        err.add_mask(
            rows,
            bad,
            "tier",
            frame["tier"],
            lambda i: f"unknown tier '{frame['tier'].iloc[i]}' (tiers: {', '.join(self.tiers)})",
            kind="unknown tier",
        )
        ok &= ~bad
        seats_text = frame["seats"]
        whole = _matches(seats_text, WHOLE_NUMBER)
        seats = np.zeros(len(frame), dtype=np.int64)
        seats[whole] = seats_text[whole].astype(np.int64).to_numpy()
        bad = (seats_text != "").to_numpy() & (~whole | (seats <= 0) | (seats > MAX_SEATS))
        err.add_mask(rows, bad, "seats", seats_text, "seats must be a positive whole number")
        ok &= ~bad
        version = frame["client_version"]
        bad = (version != "").to_numpy() & ~_matches(version, VERSION)
        err.add_mask(rows, bad, "client_version", version, "not a dotted version number like 5.0.2")
        ok &= ~bad
        features = []
        for i, raw in enumerate(frame["features"].tolist()):
            codes = sorted({f.strip() for f in raw.split("|")} - {""}) if raw else []
            for code in codes:
                if not FEATURE_CODE.fullmatch(code):
                    err.add(
                        rows[i],
                        "features",
                        code,
                        "not a feature code (lower-case letters, digits and _, e.g. cloud_recording)",
                    )
                    ok[i] = False
            features.append("|".join(codes))
        keep = pd.DataFrame(
            {
                "row": rows,
                "external_id": frame["external_id"],
                "name": frame["name"],
                "tier": frame["tier"],
                "region": frame["region"],
                "seats": seats,
                "account_manager": frame["account_manager"],
                "client_version": frame["client_version"],
                "features": pd.Series(features, dtype="str"),
            }
        )
        self.parts.append(keep[ok])
        # Duplicates are judged over the whole file, so an id on a bad row still counts.
        self.ids.append(pd.DataFrame({"row": rows, "external_id": frame["external_id"]}))


def _import_tenants(
    session,
    chunks,
    actor,
    path: str,
    name: str,
    sha256: str,
    progress: _Progress,
    created_at=None,
    keep_all_errors: bool = False,
) -> ImportResult:
    _lock(session, "tenants")
    errors = _Errors(TENANT_COLUMNS, keep_all=keep_all_errors)
    check = _TenantCheck(session, errors)
    rows = _read_all(chunks, check, errors, path, progress)
    good = pd.concat(check.parts, ignore_index=True) if check.parts else pd.DataFrame(columns=["row"])
    ids = pd.concat(check.ids, ignore_index=True) if check.ids else pd.DataFrame()
    if len(ids):
        ids = ids[ids["external_id"] != ""]
        dup = ids.duplicated("external_id", keep="first").to_numpy()
        first = ids.groupby("external_id", sort=False)["row"].transform("first").to_numpy()
        errors.add_mask(
            ids["row"].to_numpy(),
            dup,
            "external_id",
            ids["external_id"],
            lambda i: f"duplicate external_id (first on row {first[i]})",
            kind="duplicate external_id",
        )
        good = good[~good["row"].isin(ids["row"].to_numpy()[dup])]
    rules = load_track_rules(session)
    existing = _existing_tenants(session, good["external_id"].tolist() if len(good) else [])
    plan = _plan_tenants(session, good, existing, rules, errors)
    errors.raise_if_any(path)

    result = ImportResult(
        "tenants", added=len(plan.new), skipped=plan.same, updated=len(plan.changed), rows=rows
    )
    if result.added or result.updated:
        named = plan.changed["id"].tolist() if len(plan.changed) else []
        named += [tid for tid, _ in plan.drop_states]
        with counts_follow(session, named, adding=len(plan.new)) as touched:
            _write_tenants(session, plan, rules, progress, created_at, touched)
        _refresh_statistics(session, result.added + result.updated)
        _audit(session, actor, "tenants", name, sha256, result)
    progress.finish(rows)
    return result


@dataclass
class _TenantPlan:
    new: pd.DataFrame
    changed: pd.DataFrame  # with id, old_tier, created_at
    same: int
    drop_states: list[tuple[int, str]]  # (tenant id, track) no longer covered and never started


def _existing_tenants(session: Session, external_ids: list[str]) -> pd.DataFrame:
    cols = [
        "id",
        "external_id",
        "name",
        "tier",
        "region",
        "seats",
        "account_manager",
        "client_version",
        "created_at",
    ]
    if not external_ids:
        return pd.DataFrame(columns=[*cols, "features"])
    stmt = select(
        Tenant.id,
        Tenant.external_id,
        Tenant.name,
        Tenant.tier,
        Tenant.region,
        Tenant.seats,
        Tenant.account_manager,
        Tenant.client_version,
        Tenant.created_at,
    )
    wanted = sorted(set(external_ids))
    found: list = []
    if len(wanted) > SCAN_AT:
        want = set(wanted)
        found = [r for r in session.execute(stmt) if r.external_id in want]
    else:
        for start in range(0, len(wanted), IN_BATCH):
            found += session.execute(
                stmt.where(Tenant.external_id.in_(wanted[start : start + IN_BATCH]))
            ).all()
    frame = pd.DataFrame(found, columns=cols)
    if frame.empty:
        return frame.assign(features=pd.Series(dtype="str"))
    feats = _for_tenants(
        session,
        select(TenantFeature.tenant_id, TenantFeature.feature),
        TenantFeature.tenant_id,
        frame["id"].to_numpy(),
    )
    by_tenant: dict[int, list[str]] = {}
    for tid, feature in feats:
        by_tenant.setdefault(tid, []).append(feature)
    frame["features"] = ["|".join(sorted(by_tenant.get(t, []))) for t in frame["id"].tolist()]
    return frame


def _covered(rules: dict[str, TrackRules], tier: str) -> list[str]:
    return [code for code, r in rules.items() if tier in r.tiers]


def _plan_tenants(session, good: pd.DataFrame, existing: pd.DataFrame, rules, errors: _Errors) -> _TenantPlan:
    if good.empty:
        return _TenantPlan(good, good, 0, [])
    merged = good.merge(existing, on="external_id", how="left", suffixes=("", "_db"), indicator=True)
    is_new = (merged["_merge"] == "left_only").to_numpy()
    old = merged[~is_new]
    fields = ["name", "tier", "region", "seats", "account_manager", "client_version", "features"]
    same_mask = np.ones(len(old), dtype=bool)
    for f in fields:
        a, b = old[f].astype("str").to_numpy(), old[f + "_db"].astype("str").to_numpy()
        same_mask &= a == b
    changed = old[~same_mask].copy()
    drop_states: list[tuple[int, str]] = []
    tier_moves = changed[changed["tier"] != changed["tier_db"]]
    if len(tier_moves):
        started = {
            (t, k)
            for t, k in _for_tenants(
                session,
                select(RolloutEvent.tenant_id, RolloutEvent.track_code).distinct(),
                RolloutEvent.tenant_id,
                tier_moves["id"].to_numpy(dtype=np.int64),
            )
        }
        for r in tier_moves.itertuples():
            tid = int(r.id)
            lost = [k for k in _covered(rules, r.tier_db) if r.tier not in rules[k].tiers]
            for k in lost:
                if (tid, k) in started:
                    errors.add(
                        r.row,
                        "tier",
                        r.tier,
                        f"tier change from {r.tier_db} to {r.tier} would drop the tenant's {k} progress "
                        f"(tier {r.tier} is not on track {k}); record a rollback first or keep the tier",
                        kind="tier change would drop progress",
                    )
                else:
                    drop_states.append((tid, k))
    return _TenantPlan(merged[is_new], changed, int(same_mask.sum()), drop_states)


def _write_tenants(
    session: Session,
    plan: _TenantPlan,
    rules,
    progress: _Progress,
    created_at: datetime | None,
    touched: Touched,
) -> None:
    now, now_text = _now_text(created_at)
    new = plan.new
    if len(new):
        before = session.scalar(select(func.coalesce(func.max(Tenant.id), 0)))
        search_trigger = _pause_search_trigger(session, len(new))
        # Every file column but the features, which go to tenant_features.
        tenant_columns = [c for c in TENANT_COLUMNS if c != "features"]
        bulk_insert(
            session,
            Tenant.__table__,
            [*tenant_columns, "created_at", "updated_at"],
            _chunked_rows(new, tenant_columns, (now_text, now_text)),
            progress.write,
        )
        _index_new_tenants(session, search_trigger, before)
        # The tenants table is locked (PostgreSQL) or the database is (SQLite), so every id
        # above the old maximum is one of ours.
        new = new[["external_id", "tier", "region", "account_manager", "features"]]
        new = new.assign(id=_new_tenant_ids(session, before, new["external_id"]))
        touched.add(new["id"].tolist())
        _insert_features(session, new)
        state_columns = ["id", "tier", "region", "account_manager"]
        states = [
            _chunked_rows(
                new[new["tier"].isin(list(track.tiers))],
                state_columns,
                (track.code, track.initial, track.initial, now_text, ""),
                first=1,
            )
            for track in rules.values()
        ]
        bulk_insert(
            session,
            CurrentState.__table__,
            [
                "tenant_id",
                "track_code",
                "stage_code",
                "reached_stage_code",
                "since",
                "note",
                "tier",
                "region",
                "account_manager",
            ],
            itertools.chain(*states),
        )
    changed = plan.changed
    if len(changed):
        session.execute(
            update(Tenant.__table__)
            .where(Tenant.__table__.c.id == bindparam("b_id"))
            .values(
                name=bindparam("b_name"),
                tier=bindparam("b_tier"),
                region=bindparam("b_region"),
                seats=bindparam("b_seats"),
                account_manager=bindparam("b_am"),
                client_version=bindparam("b_cv"),
                updated_at=now,
            ),
            [
                dict(
                    b_id=int(r.id),
                    b_name=r.name,
                    b_tier=r.tier,
                    b_region=r.region,
                    b_seats=int(r.seats),
                    b_am=r.account_manager,
                    b_cv=r.client_version,
                )
                for r in changed.itertuples()
            ],
        )
        session.execute(
            update(CurrentState.__table__)
            .where(CurrentState.__table__.c.tenant_id == bindparam("b_id"))
            .values(
                tier=bindparam("b_tier"), region=bindparam("b_region"), account_manager=bindparam("b_am")
            ),
            [
                dict(b_id=int(r.id), b_tier=r.tier, b_region=r.region, b_am=r.account_manager)
                for r in changed.itertuples()
            ],
        )
        feat = changed[changed["features"] != changed["features_db"]]
        if len(feat):
            session.execute(
                delete(TenantFeature.__table__).where(
                    TenantFeature.__table__.c.tenant_id == bindparam("b_id")
                ),
                [{"b_id": int(t)} for t in feat["id"].tolist()],
            )
            _insert_features(session, feat.assign(id=feat["id"].astype(np.int64)))
        for tid, track in plan.drop_states:
            session.execute(
                delete(CurrentState).where(CurrentState.tenant_id == tid, CurrentState.track_code == track)
            )
        for r in changed[changed["tier"] != changed["tier_db"]].itertuples():
            gained = [k for k in _covered(rules, r.tier) if r.tier_db not in rules[k].tiers]
            for k in gained:
                # No event yet, so the state is what recompute_state derives: initial, since created.
                session.execute(
                    insert(CurrentState).values(
                        tenant_id=int(r.id),
                        track_code=k,
                        stage_code=rules[k].initial,
                        reached_stage_code=rules[k].initial,
                        since=r.created_at,
                        note="",
                        tier=r.tier,
                        region=r.region,
                        account_manager=r.account_manager,
                    )
                )
        progress.write(len(changed))


def _insert_features(session: Session, tenants: pd.DataFrame) -> None:
    tenants = tenants[tenants["features"] != ""]
    pairs = (
        (int(t), f)
        for start in range(0, len(tenants), WRITE_CHUNK)
        for t, fs in zip(
            tenants["id"].iloc[start : start + WRITE_CHUNK].tolist(),
            tenants["features"].iloc[start : start + WRITE_CHUNK].tolist(),
            strict=True,
        )
        for f in fs.split("|")
    )
    bulk_insert(session, TenantFeature.__table__, ["tenant_id", "feature"], pairs)


def _chunked_rows(
    frame: pd.DataFrame, columns: list[str], constants: tuple, first: int | None = None
) -> Iterator[tuple]:
    """Rows of `frame[columns]` as tuples, with `constants` after the first `first` columns (default: last).

    Built WRITE_CHUNK rows at a time, so a million-row load never holds every row as Python objects.
    """
    for start in range(0, len(frame), WRITE_CHUNK):
        part = frame.iloc[start : start + WRITE_CHUNK]
        values = [part[c].astype(int).tolist() if c in ("seats", "id") else part[c].tolist() for c in columns]
        fixed = [itertools.repeat(c) for c in constants]
        at = len(values) if first is None else first
        yield from zip(*values[:at], *fixed, *values[at:], strict=False)


def _new_tenant_ids(session: Session, after_id: int, external_ids: pd.Series) -> np.ndarray:
    """Ids of the tenants just inserted (all ids above `after_id`), in the order of `external_ids`."""
    stmt = select(Tenant.external_id, Tenant.id).where(Tenant.id > after_id)
    result = session.connection().execute(stmt.execution_options(stream_results=True, yield_per=FETCH_BATCH))
    keys, ids = [], []
    for part in result.partitions(FETCH_BATCH):
        ext, tid = _columns(part, 2)
        keys.append(pa.array(ext, type=pa.string()))
        ids.append(np.asarray(tid, dtype=np.int64))
    if not keys:
        return np.zeros(0, dtype=np.int64)
    where = _lookup(external_ids, pa.concat_arrays(keys))
    return np.concatenate(ids)[where]


# --------------------------------------------------------------------------- events


class _EventCheck:
    """Row checks for an events file; keeps the valid rows as compact columns for the rule check."""

    def __init__(self, session: Session, errors: _Errors, date_format: str | None = None):
        self.errors = errors
        self.date_format = date_format
        self.rules = load_track_rules(session)
        self.tracks = list(self.rules)
        self.track_set = pa.array(self.tracks, type=pa.string())
        self.stages = sorted({s for r in self.rules.values() for s in r.stages + r.side_stages})
        self.stage_set = pa.array(self.stages, type=pa.string())
        self.tiers = session.scalars(select(Tier.code).order_by(Tier.code)).all()
        # pos[track, stage]: order of an ordered stage, SIDE for a side stage, -1 when not on the track.
        self.pos = np.full((len(self.tracks) + 1, len(self.stages) + 1), -1, dtype=np.int16)
        self.cover = np.zeros((len(self.tracks) + 1, len(self.tiers) + 1), dtype=bool)
        # stage_at[track, p]: the stage (its index in self.stages) at order p of the track.
        longest = max((len(r.stages) for r in self.rules.values()), default=0)
        self.stage_at = np.full((len(self.tracks) + 1, longest + 1), -1, dtype=np.int16)
        self.blocked = self.stages.index(BLOCKED) if BLOCKED in self.stages else -1
        for k, code in enumerate(self.tracks):
            r = self.rules[code]
            for p, s in enumerate(r.stages):
                self.pos[k, self.stages.index(s)] = p
                self.stage_at[k, p] = self.stages.index(s)
            for s in r.side_stages:
                self.pos[k, self.stages.index(s)] = SIDE
            for t, tier in enumerate(self.tiers):
                self.cover[k, t] = tier in r.tiers
        # The file's tenants, looked up as chunks name them (a ten-row upload must not read a
        # million tenants); once a file names many, every tenant is read in one scan instead.
        self._session = session
        self._all_read = False
        self.tenant_set = pa.array([], type=pa.string())
        self.tenant_ids = np.zeros(0, dtype=np.int64)
        self.tenant_tier = np.zeros(0, dtype=np.int64)
        self.limit = np.datetime64(utcnow() + FUTURE_TOLERANCE, "us")
        self.parts: list[pd.DataFrame] = []

    def _learn_tenants(self, external_ids: pd.Series) -> None:
        """Add the stored tenants among `external_ids` that are not known yet to the look-up arrays."""
        if self._all_read:
            return
        unknown = pd.unique(external_ids[_lookup(external_ids, self.tenant_set) < 0])
        # A NUL cannot be in a stored id, and PostgreSQL refuses it as a parameter (the row is
        # reported for its control character).
        unknown = [e for e in unknown.tolist() if e and "\x00" not in e]
        if not unknown:
            return
        stmt = select(Tenant.external_id, Tenant.id, Tenant.tier)
        conn = self._session.connection()
        if len(unknown) + len(self.tenant_ids) > SCAN_AT:
            # Streamed in partitions, each kept as Arrow text and numbers: a million tenants
            # as Python rows would take hundreds of MiB.
            result = conn.execute(stmt.execution_options(stream_results=True, yield_per=FETCH_BATCH))
            batches = result.partitions(FETCH_BATCH)
            self._all_read = True
            self.tenant_set = pa.array([], type=pa.string())
            self.tenant_ids = self.tenant_tier = np.zeros(0, dtype=np.int64)
        else:
            batches = (
                conn.execute(stmt.where(Tenant.external_id.in_(unknown[start : start + IN_BATCH]))).all()
                for start in range(0, len(unknown), IN_BATCH)
            )
        tier_pos = {t: i for i, t in enumerate(self.tiers)}
        sets, ids, tiers = [self.tenant_set], [self.tenant_ids], [self.tenant_tier]
        for found in batches:
            if not found:
                continue
            ext, tid, tier = _columns(found, 3)
            sets.append(pa.array(ext, type=pa.string()))
            ids.append(np.asarray(tid, dtype=np.int64))
            tiers.append(np.asarray([tier_pos.get(t, len(self.tiers)) for t in tier], dtype=np.int64))
        self.tenant_set = pa.concat_arrays(sets)
        self.tenant_ids = np.concatenate(ids)
        self.tenant_tier = np.concatenate(tiers)

    def __call__(self, frame: pd.DataFrame, rows: np.ndarray) -> None:
        err = self.errors
        if "source" not in frame:
            frame = frame.assign(source="")
        if "note" not in frame:
            frame = frame.assign(note="")
        when = frame["occurred_at"]
        if pd.api.types.is_datetime64_any_dtype(when.dtype):
            ok = (
                _missing(frame.drop(columns="occurred_at"), rows, EVENT_COLUMNS[:3], err)
                & ~when.isna().to_numpy()
            )
            err.add_mask(rows, when.isna().to_numpy(), "occurred_at", when, "missing required value")
        else:
            ok = _missing(frame, rows, EVENT_COLUMNS, err)
        ok &= _too_long(frame, rows, ("source", "note"), err)
        ok &= _no_control_chars(frame, rows, EVENT_COLUMNS + EVENT_OPTIONAL, err)
        tenant, track, stage = frame["tenant_id"], frame["track"], frame["stage"]

        self._learn_tenants(tenant)
        ti = _lookup(tenant, self.tenant_set)
        bad = (ti < 0) & (tenant != "").to_numpy()
        err.add_mask(
            rows,
            bad,
            "tenant_id",
            tenant,
            lambda i: f"no tenant with id '{_show(tenant.iloc[i])}' (import tenants first)",
            kind="unknown tenant",
        )
        ok &= ~bad

        ki = _lookup(track, self.track_set)
        bad = (ki < 0) & (track != "").to_numpy()
        err.add_mask(
            rows,
            bad,
            "track",
            track,
            lambda i: f"unknown track '{_show(track.iloc[i])}' (tracks: {', '.join(self.tracks)})",
            kind="unknown track",
        )
        ok &= ~bad

        si = _lookup(stage, self.stage_set)
        pos = self.pos[ki, si]  # -1 indexes the padding row/column, which is all -1
        bad = (ki >= 0) & (pos < 0) & (stage != "").to_numpy()

        def no_stage(i: int) -> str:
            r = self.rules[track.iloc[i]]
            stages = ", ".join(r.stages + r.side_stages)
            return f"track '{r.code}' has no stage '{_show(stage.iloc[i])}' (stages: {stages})"

        err.add_mask(rows, bad, "stage", stage, no_stage, kind="unknown stage")
        ok &= ~bad

        # ti = -1 (unknown tenant) picks the sentinel "no tier" at the end.
        tier = np.append(self.tenant_tier, len(self.tiers))[ti]
        bad = (ti >= 0) & (ki >= 0) & ~self.cover[ki, tier]

        def uncovered(i: int) -> str:
            r = self.rules[track.iloc[i]]
            return (
                f"tenant '{tenant.iloc[i]}' is on tier '{self.tiers[tier[i]]}', which track '{r.code}' "
                f"does not cover (covers: {', '.join(sorted(r.tiers))})"
            )

        err.add_mask(rows, bad, "track", track, uncovered, kind="track does not cover the tenant's tier")
        ok &= ~bad

        stamps, bad_time = csvio.parse_timestamps(when, self.date_format)
        if not pd.api.types.is_datetime64_any_dtype(when.dtype):
            bad_time &= (when != "").to_numpy()
            err.add_mask(
                rows,
                bad_time,
                "occurred_at",
                when,
                lambda i: csvio.timestamp_problem(when.iloc[i], self.date_format),
                kind="not a date or time in the expected layout",
            )
            ok &= ~bad_time
        future = ~np.isnat(stamps) & (stamps > self.limit)
        err.add_mask(
            rows,
            future,
            "occurred_at",
            when,
            lambda i: f"time {pd.Timestamp(stamps[i]):%Y-%m-%d %H:%M} is in the future",
            kind="in the future",
        )
        ok &= ~future

        if not ok.any():
            return
        source = frame["source"].where(frame["source"] != "", DEFAULT_SOURCE)
        self.parts.append(
            pd.DataFrame(
                {
                    "row": rows[ok],
                    "tenant": self.tenant_ids[ti[ok]],
                    "track": ki[ok].astype(np.int16),
                    "stage": si[ok].astype(np.int16),
                    "pos": pos[ok],
                    "t": stamps[ok].astype(np.int64),
                    "source": source[ok].reset_index(drop=True),
                    "note": frame["note"][ok].reset_index(drop=True),
                }
            )
        )


@dataclass
class _EventPlan:
    insert: pd.DataFrame  # rows to write, sorted by tenant, track, time, row
    states: pd.DataFrame  # final state per (tenant, track) touched
    skipped: int


def _import_events(
    session,
    chunks,
    actor,
    path: str,
    name: str,
    sha256: str,
    progress: _Progress,
    date_format: str | None = None,
    keep_all_errors: bool = False,
) -> ImportResult:
    _lock(session, "rollout_events")
    errors = _Errors(EVENT_COLUMNS + EVENT_OPTIONAL, keep_all=keep_all_errors)
    check = _EventCheck(session, errors, date_format)
    rows = _read_all(chunks, check, errors, path, progress)
    # The CSV blocks are gone; hand their Arrow memory back before the plan builds its frames.
    pa.default_memory_pool().release_unused()
    plan = _plan_events(session, check, errors)
    errors.raise_if_any(path)

    result = ImportResult("events", added=len(plan.insert), skipped=plan.skipped, rows=rows)
    if result.added:
        with counts_follow(session, plan.states["tenant"].unique()):
            _write_events(session, check, plan, actor, progress)
        _refresh_statistics(session, result.added)
        _audit(session, actor, "events", name, sha256, result)
    progress.finish(rows)
    return result


def _plan_events(session: Session, check: _EventCheck, errors: _Errors) -> _EventPlan:
    """Skip repeats, then check the rules over stored and new events merged in time order."""
    empty = _EventPlan(pd.DataFrame(), pd.DataFrame(), 0)
    if not check.parts:
        return empty
    df = pd.concat(check.parts, ignore_index=True)
    check.parts.clear()
    # Stable sort: within one instant, file order decides, as the event ids will.
    order = np.lexsort(
        (df["row"].to_numpy(), df["t"].to_numpy(), df["track"].to_numpy(), df["tenant"].to_numpy())
    )
    df = df.iloc[order].reset_index(drop=True)
    key = ["tenant", "track", "t", "stage"]
    skip = df.duplicated(key, keep="first").to_numpy(copy=True)
    if skip.any():
        _conflicting_repeats(df, key, errors)

    groups = _groups(df[~skip])
    current = _current_states(session, check, groups["tenant"].to_numpy())
    groups = groups.merge(current, on=["tenant", "track"], how="left")
    groups["has_events"] = groups["since"].notna()
    # Stored events matter only where the new ones do not simply come after all of them.
    needs_history = groups["has_events"] & (groups["t_min"] <= groups["since"])
    history = _stored_events(session, check, groups[needs_history])
    if len(history):
        hit = df.merge(history[key].assign(_db=True), on=key, how="left")["_db"].notna().to_numpy()
        skip |= hit
    skipped = int(skip.sum())
    df = df[~skip].reset_index(drop=True)
    if df.empty:
        return _EventPlan(df, pd.DataFrame(), skipped)

    starts = _group_starts(df)
    groups = _groups(df).merge(current, on=["tenant", "track"], how="left")
    has_events = groups["since"].notna().to_numpy()
    since = groups["since"].fillna(np.iinfo(np.int64).min).to_numpy(dtype=np.int64)
    start_pos = groups["reached_pos"].fillna(0).to_numpy(dtype=np.int64)
    t_min = groups["t_min"].to_numpy()
    gid = np.cumsum(starts) - 1
    side = df["pos"].to_numpy() >= SIDE
    # `blocked` keeps the stage reached, so it folds like the ordered stages below; any other
    # side stage (a rollback moves the stage reached back) goes through the rules fold.
    folded = side & (df["stage"].to_numpy() != check.blocked)
    needs_fold = np.zeros(len(groups), dtype=bool)
    np.logical_or.at(needs_fold, gid, folded)
    interleaved = has_events & (t_min < since)
    complex_ = needs_fold | interleaved

    # Ordered stages and `blocked`: an ordered stage is valid iff it is not below the highest
    # reached before it (the stored state's, then the file's); `blocked` is always valid.
    pos = df["pos"].to_numpy().astype(np.int64)
    simple_rows = ~complex_[gid]
    running = pd.Series(np.where(simple_rows & ~side, pos, -1)).groupby(gid).cummax().to_numpy()
    before = np.where(starts, -1, np.roll(running, 1))
    reached = np.maximum(before, start_pos[gid])
    back = simple_rows & (pos < reached)
    if back.any():
        rows = df["row"].to_numpy()

        def why(i: int) -> str:
            rules = check.rules[check.tracks[df["track"].iat[i]]]
            at = pd.Timestamp(df["t"].iat[i], unit="us").to_pydatetime()
            stage = check.stages[df["stage"].iat[i]]
            try:
                apply_event(rules, State(rules.stages[reached[i]], rules.stages[reached[i]]), stage, at)
            except RuleViolation as exc:
                return str(exc)
            return "a step backwards"

        errors.add_mask(
            rows, back, "stage", pd.Series([check.stages[s] for s in df["stage"]]), why, "a step backwards"
        )

    last = np.r_[starts[1:], True]
    track_last = df["track"].to_numpy()[last]
    reached_last = np.maximum(running[last], start_pos)
    states = pd.DataFrame(
        {
            "tenant": df["tenant"].to_numpy()[last],
            "track": track_last,
            "stage": df["stage"].to_numpy()[last],
            "reached": check.stage_at[track_last, reached_last],
            "since": df["t"].to_numpy()[last],
            "last_t": df["t"].to_numpy()[last],
            "last_stage": df["stage"].to_numpy()[last],
        }
    )
    if complex_.any():
        _fold_complex(session, check, df, groups, gid, complex_, interleaved, has_events, states, errors)
    return _EventPlan(df, states, skipped)


def _conflicting_repeats(df: pd.DataFrame, key: list[str], errors: _Errors) -> None:
    """Report a repeated event (same tenant, track, time, stage) whose note or source is not its first row's.

    A plain repeat is skipped (a re-import adds nothing); one with other text would drop
    that text silently, so the person has to pick one.
    """
    dups = df[df.duplicated(key, keep=False)].reset_index(drop=True)
    first = dups.groupby(key, sort=False)[["row", "note", "source"]].transform("first")
    note_differs = (dups["note"] != first["note"]).to_numpy()
    differs = note_differs | (dups["source"] != first["source"]).to_numpy()

    def why(i: int) -> str:
        what = "note" if note_differs[i] else "source"
        return (
            f"the same event (tenant, track, stage and time) as row {first['row'].iat[i]}, with a different "
            f"{what}: keep one of the two rows"
        )

    errors.add_mask(
        dups["row"].to_numpy(), differs, "note", dups["note"], why, "repeated event with a different note"
    )


def _groups(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (tenant, track) of a frame sorted by tenant, track, time, with its first time."""
    starts = _group_starts(df)
    return pd.DataFrame(
        {
            "tenant": df["tenant"].to_numpy()[starts],
            "track": df["track"].to_numpy()[starts],
            "t_min": df["t"].to_numpy()[starts],
        }
    )


def _group_starts(df: pd.DataFrame) -> np.ndarray:
    tenant, track = df["tenant"].to_numpy(), df["track"].to_numpy()
    if not len(tenant):
        return np.zeros(0, dtype=bool)
    return np.r_[True, (tenant[1:] != tenant[:-1]) | (track[1:] != track[:-1])]


def _current_states(session: Session, check: _EventCheck, tenant_ids: np.ndarray) -> pd.DataFrame:
    """Stored state of tenants that already have events: reached position, stage, time of last event."""
    cols = ["tenant", "track", "cur_stage", "reached_pos", "since"]
    if session.scalar(select(RolloutEvent.id).limit(1)) is None:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in cols})
    stmt = select(
        CurrentState.tenant_id,
        CurrentState.track_code,
        CurrentState.stage_code,
        CurrentState.reached_stage_code,
        cast(CurrentState.since, String),
    ).where(CurrentState.last_event_id.is_not(None))
    reached_pos = {(k, s): p for k, r in check.rules.items() for p, s in enumerate(r.stages)}
    parts = [pd.DataFrame({c: pd.Series(dtype="int64") for c in cols})]
    # Each batch is reduced to numeric columns at once: a million states never sit in memory as rows.
    for batch in _tenant_batches(session, stmt, CurrentState.tenant_id, tenant_ids):
        if not batch:
            continue
        found = _columns(batch, 5)
        parts.append(
            pd.DataFrame(
                {
                    "tenant": np.asarray(found[0], dtype=np.int64),
                    "track": _codes(found[1], check.tracks),
                    "cur_stage": _codes(found[2], check.stages),
                    "reached_pos": [reached_pos.get(kr, -1) for kr in zip(found[1], found[3], strict=True)],
                    "since": _stamps(found[4]),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    return frame[(frame["track"] >= 0) & (frame["reached_pos"] >= 0)].astype({"reached_pos": "int64"})


def _stored_events(session: Session, check: _EventCheck, groups: pd.DataFrame) -> pd.DataFrame:
    """Stored events of these (tenant, track) groups, in time then id order."""
    cols = ["tenant", "track", "t", "stage", "id"]
    if groups.empty:
        return pd.DataFrame(columns=cols)
    stmt = select(
        RolloutEvent.tenant_id,
        RolloutEvent.track_code,
        cast(RolloutEvent.occurred_at, String),
        RolloutEvent.stage_code,
        RolloutEvent.id,
    )
    wanted = groups[["tenant", "track"]]
    parts = []
    # Each batch is reduced to numeric columns at once, so a large history never sits in memory as rows.
    for batch in _tenant_batches(session, stmt, RolloutEvent.tenant_id, groups["tenant"].to_numpy()):
        if not batch:
            continue
        found = _columns(batch, 5)
        part = pd.DataFrame(
            {
                "tenant": np.asarray(found[0], dtype=np.int64),
                "track": _codes(found[1], check.tracks),
                "t": _stamps(found[2]),
                "stage": _codes(found[3], check.stages),
                "id": np.asarray(found[4], dtype=np.int64),
            }
        )
        parts.append(part.merge(wanted, on=["tenant", "track"]))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in cols})
    events = pd.concat(parts, ignore_index=True)
    return events.sort_values(["tenant", "track", "t", "id"], kind="stable").reset_index(drop=True)


def _columns(rows: list, n: int) -> list[tuple]:
    return list(zip(*rows, strict=True)) if rows else [()] * n


def _codes(values: tuple, known: list[str]) -> np.ndarray:
    """Position of each value in `known` (-1 when absent), as int16 like the checked rows."""
    return pd.Index(known).get_indexer(list(values)).astype(np.int16)


def _fold_complex(
    session,
    check: _EventCheck,
    df: pd.DataFrame,
    groups: pd.DataFrame,
    gid: np.ndarray,
    complex_: np.ndarray,
    interleaved: np.ndarray,
    has_events: np.ndarray,
    states: pd.DataFrame,
    errors: _Errors,
) -> None:
    """Run the rules fold for groups with side stages or with new events among stored ones."""
    history = _stored_events(session, check, groups[interleaved])
    by_group = (
        {key: part for key, part in history.groupby(["tenant", "track"], sort=False)} if len(history) else {}
    )
    first_row = np.flatnonzero(_group_starts(df))
    ends = np.r_[first_row[1:], len(df)]
    stage_col, t_col, row_col = df["stage"].to_numpy(), df["t"].to_numpy(), df["row"].to_numpy()
    # Results go into plain arrays and back into `states` once: a pandas setitem per group
    # copied the column each time, quadratic at a million tenants (hours instead of seconds).
    out_cols = ["stage", "reached", "since", "last_t", "last_stage"]
    out = {c: states[c].to_numpy(copy=True) for c in out_cols}
    g_tenant, g_track = groups["tenant"].to_numpy(), groups["track"].to_numpy()
    g_stage = groups["cur_stage"].fillna(-1).to_numpy(dtype=np.int64)
    g_reached = groups["reached_pos"].fillna(-1).to_numpy(dtype=np.int64)
    for g in np.flatnonzero(complex_):
        tenant, track_ix = int(g_tenant[g]), int(g_track[g])
        rules = check.rules[check.tracks[track_ix]]
        # (time, stored first, order, stage, file row or None)
        timeline = [
            (int(t_col[i]), 1, int(row_col[i]), check.stages[stage_col[i]], int(row_col[i]))
            for i in range(first_row[g], ends[g])
        ]
        if interleaved[g]:
            state = initial_state(rules)
            stored = by_group.get((tenant, track_ix))
            if stored is not None:
                timeline += [
                    (int(t), 0, int(i), check.stages[s], None)
                    for t, s, i in zip(stored["t"], stored["stage"], stored["id"], strict=True)
                ]
            timeline.sort(key=lambda e: e[:3])
        elif has_events[g]:
            state = State(check.stages[g_stage[g]], rules.stages[g_reached[g]])
        else:
            state = initial_state(rules)
        blame = None
        for t, _, _, stage, row in timeline:
            at = pd.Timestamp(t, unit="us").to_pydatetime()
            try:
                state = apply_event(rules, state, stage, at)
            except RuleViolation as exc:
                if row is not None:
                    errors.add(row, "stage", stage, str(exc), kind="breaks the rollout rules")
                else:
                    culprit = blame or (timeline[0][4], timeline[0][3], timeline[0][0])
                    errors.add(
                        culprit[0],
                        "occurred_at",
                        culprit[1],
                        f"placed before the stored '{stage}' event of {at:%Y-%m-%d %H:%M}, it would make "
                        f"that event a step backwards: {exc}",
                        kind="placed before a stored event it would break",
                    )
                continue
            if row is not None:
                blame = (row, stage, t)
        out["stage"][g] = check.stages.index(state.stage)
        out["reached"][g] = check.stages.index(state.reached)
        out["since"][g] = np.datetime64(state.since, "us").astype(np.int64)
        out["last_t"][g] = timeline[-1][0]
        out["last_stage"][g] = check.stages.index(timeline[-1][3])
    for c in out_cols:
        states[c] = out[c]


_STAGING = MetaData()
IMPORT_STATE = Table(
    "lockstep_import_state",
    _STAGING,
    Column("tenant_id", BigInteger, primary_key=True),
    Column("track_code", String(32), primary_key=True),
    Column("stage_code", String(32)),
    Column("reached_stage_code", String(32)),
    Column("since", DateTime),
    Column("last_at", DateTime),
    Column("last_stage", String(32)),
    prefixes=["TEMPORARY"],
)

_UPDATE_STATE = """
UPDATE current_state SET stage_code = s.stage_code, reached_stage_code = s.reached_stage_code,
    since = s.since, last_event_id = e.id, note = e.note
FROM lockstep_import_state s
JOIN rollout_events e ON e.tenant_id = s.tenant_id AND e.track_code = s.track_code
    AND e.occurred_at = s.last_at AND e.stage_code = s.last_stage
WHERE current_state.tenant_id = s.tenant_id AND current_state.track_code = s.track_code
"""
_INSERT_STATE = """
INSERT INTO current_state (tenant_id, track_code, stage_code, reached_stage_code, since, last_event_id, note,
    tier, region, account_manager)
SELECT s.tenant_id, s.track_code, s.stage_code, s.reached_stage_code, s.since, e.id, e.note,
    t.tier, t.region, t.account_manager
FROM lockstep_import_state s
JOIN tenants t ON t.id = s.tenant_id
JOIN rollout_events e ON e.tenant_id = s.tenant_id AND e.track_code = s.track_code
    AND e.occurred_at = s.last_at AND e.stage_code = s.last_stage
WHERE NOT EXISTS (
    SELECT 1 FROM current_state c WHERE c.tenant_id = s.tenant_id AND c.track_code = s.track_code)
"""


def _write_events(
    session: Session, check: _EventCheck, plan: _EventPlan, actor: Actor, progress: _Progress
) -> None:
    df = plan.insert
    _, now_text = _now_text()
    track_names = np.asarray(check.tracks, dtype=object)
    stage_names = np.asarray(check.stages, dtype=object)
    latest = session.scalar(select(func.max(SnapshotWeek.week_start)))
    restate = np.zeros(len(df), dtype=bool)
    if latest is not None:
        restate = df["t"].to_numpy() < np.datetime64(week_end(latest), "us").astype(np.int64)

    def rows() -> Iterator[tuple]:
        for start in range(0, len(df), WRITE_CHUNK):
            part = df.iloc[start : start + WRITE_CHUNK]
            part = part[~restate[start : start + WRITE_CHUNK]]
            yield from zip(
                part["tenant"].tolist(),
                track_names[part["track"].to_numpy()].tolist(),
                stage_names[part["stage"].to_numpy()].tolist(),
                csvio.format_timestamps(part["t"].to_numpy().astype("datetime64[us]")),
                itertools.repeat(now_text),
                itertools.repeat(actor.email),
                part["source"].tolist(),
                part["note"].tolist(),
                strict=False,
            )

    columns = [
        "tenant_id",
        "track_code",
        "stage_code",
        "occurred_at",
        "recorded_at",
        "actor",
        "source",
        "note",
    ]
    with _sqlite_bulk_load(session, RolloutEvent.__table__, int((~restate).sum())):
        bulk_insert(session, RolloutEvent.__table__, columns, rows(), progress.write)
    if restate.any():
        # Back-dated into closed weeks: the per-event restatement, in time order, as record_event does it.
        late = df[restate].sort_values(["t", "row"], kind="stable")
        now = utcnow()
        for r in late.itertuples():
            tenant = session.get(Tenant, int(r.tenant))
            at = pd.Timestamp(r.t, unit="us").to_pydatetime()
            stage = check.stages[r.stage]
            _restate_closed_weeks(session, tenant, check.rules[check.tracks[r.track]], at, stage)
            session.execute(
                insert(RolloutEvent).values(
                    tenant_id=tenant.id,
                    track_code=check.tracks[r.track],
                    stage_code=stage,
                    occurred_at=at,
                    recorded_at=now,
                    actor=actor.email,
                    source=r.source,
                    note=r.note,
                )
            )
        progress.write(len(late))
    _write_states(session, check, plan.states)


def _write_states(session: Session, check: _EventCheck, states: pd.DataFrame) -> None:
    """Move current_state to each group's final state through a staging table: one UPDATE, one INSERT."""
    conn = session.connection()
    IMPORT_STATE.drop(conn, checkfirst=True)
    IMPORT_STATE.create(conn)
    track_names = np.asarray(check.tracks, dtype=object)
    stage_names = np.asarray(check.stages, dtype=object)

    def rows() -> Iterator[tuple]:
        # WRITE_CHUNK states at a time: a million states as one set of Python lists took 250 MiB.
        for start in range(0, len(states), WRITE_CHUNK):
            part = states.iloc[start : start + WRITE_CHUNK]
            yield from zip(
                part["tenant"].tolist(),
                track_names[part["track"].to_numpy()].tolist(),
                stage_names[part["stage"].to_numpy()].tolist(),
                stage_names[part["reached"].to_numpy()].tolist(),
                csvio.format_timestamps(part["since"].to_numpy().astype("datetime64[us]")),
                csvio.format_timestamps(part["last_t"].to_numpy().astype("datetime64[us]")),
                stage_names[part["last_stage"].to_numpy()].tolist(),
                strict=True,
            )

    columns = ["tenant_id", "track_code", "stage_code", "reached_stage_code", "since", "last_at"]
    bulk_insert(session, IMPORT_STATE, [*columns, "last_stage"], rows())
    # When most states move, SQLite re-creates current_state's plain indexes after the UPDATE:
    # measured for 1.5M of 1.8M states, the UPDATE with the indexes kept took 83.5 s against
    # 25.6 s for UPDATE, INSERT and the three re-created indexes (benchmarks/README.md).
    with _sqlite_bulk_load(session, CurrentState.__table__, len(states)):
        session.execute(text(_UPDATE_STATE))
        session.execute(text(_INSERT_STATE))
    IMPORT_STATE.drop(conn)


__all__ = [
    "ImportResult",
    "import_tenants",
    "import_events",
    "import_tenant_frame",
    "import_event_frame",
]
