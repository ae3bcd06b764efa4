"""Backup and restore of a whole Lockstep database, with a manifest to check a restore against.

A backup is one tar file holding `manifest.json` and the database itself:

- SQLite: `database.sqlite3`, a copy made with SQLite's online backup API, so it is
  consistent while the app writes (the copy is one read transaction).
- PostgreSQL: `database.pgdump`, `pg_dump --format=custom` taken on a snapshot exported
  from the same REPEATABLE READ transaction that counted the rows and read the audit head,
  so the manifest describes exactly what the dump holds.

The manifest records the schema revision, every table's row count and the audit head. A
restore goes into an empty database (or one emptied with `force=True`), then recounts
every table and compares the audit head and chain with the manifest; any difference is an
error, never a warning. `tar -xf` gets the payload out for manual use (`pg_restore`).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import URL

from lockstep.clock import utcnow
from lockstep.errors import LockstepError, ValidationError

FORMAT = "lockstep-backup/1"
MANIFEST = "manifest.json"
PAYLOAD = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
# alembic_version is not a model but is part of what a restore must bring back.
EXTRA_TABLES = ("alembic_version",)


class BackupError(LockstepError):
    """A backup or restore could not be made or did not check out."""


@dataclass(frozen=True)
class Manifest:
    """What a backup holds: backend, schema revision, row count per table, audit head."""

    backend: str
    created_at: str
    revision: str | None
    audit_head: str
    audit_entries: int
    tables: dict[str, int]

    def to_json(self) -> bytes:
        """The manifest as stored in the archive."""
        return json.dumps({"format": FORMAT, **self.__dict__}, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, *, source: str) -> Manifest:
        """Read a manifest; a file that is not a Lockstep backup is refused by name."""
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ValidationError(f"{source}: manifest.json is not JSON ({exc})") from exc
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise ValidationError(f"{source}: not a {FORMAT} archive")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValidationError(f"{source}: manifest.json has unexpected fields ({exc})") from exc


@dataclass(frozen=True)
class RestoreResult:
    """What a restore brought back, checked against the backup's manifest."""

    manifest: Manifest
    rows: int

    def summary(self) -> str:
        """One line for the command line."""
        m = self.manifest
        return (
            f"restored {len(m.tables)} tables, {self.rows:,} rows, revision {m.revision}; "
            f"audit log intact, head {m.audit_head} matches the backup of {m.created_at}"
        )


# --- reading a database's state ---------------------------------------------------------


def _table_names(conn) -> list[str]:
    """Every table of ours in the database (models plus alembic_version), sorted."""
    from lockstep.models import Base

    present = set(inspect(conn).get_table_names())
    wanted = set(Base.metadata.tables) | set(EXTRA_TABLES)
    return sorted(present & wanted)


def _state(conn) -> tuple[str | None, str, int, dict[str, int]]:
    """(revision, audit head, audit entries, rows per table) as seen by `conn`'s transaction."""
    from lockstep.services.audit import GENESIS

    tables = _table_names(conn)
    # Table names come from our own metadata, never from input.
    counts = {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}  # noqa: S608
    revision = (
        conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if "alembic_version" in tables
        else None
    )
    head = (
        conn.execute(text("SELECT hash FROM audit_head WHERE id = 1")).scalar()
        if "audit_head" in tables
        else None
    )
    return revision, head or GENESIS, counts.get("audit_log", 0), counts


def _manifest_of(conn, backend: str) -> Manifest:
    revision, head, entries, counts = _state(conn)
    return Manifest(
        backend=backend,
        created_at=utcnow().isoformat(timespec="seconds"),
        revision=revision,
        audit_head=head,
        audit_entries=entries,
        tables=counts,
    )


def _backend(engine: Engine) -> str:
    name = engine.dialect.name
    if name not in PAYLOAD:
        raise BackupError(f"backups support SQLite and PostgreSQL, not {name}")
    return name


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise ValidationError("backup and restore need a SQLite file, not an in-memory database")
    return Path(url.database)


# --- backup -----------------------------------------------------------------------------


def backup_database(*, engine: Engine, output: Path) -> Manifest:
    """Write a consistent backup of the database behind `engine` to `output`; return its manifest."""
    backend = _backend(engine)
    if not output.parent.is_dir():
        raise ValidationError(f"{output}: the folder {output.parent} does not exist")
    with tempfile.TemporaryDirectory(prefix="lockstep-backup-") as tmp:
        payload = Path(tmp) / PAYLOAD[backend]
        if backend == "sqlite":
            manifest = _backup_sqlite(engine, payload)
        else:
            manifest = _backup_postgres(engine, payload)
        # Write beside the target and rename, so a failed backup never leaves a torn file.
        partial = output.with_name(output.name + ".partial")
        with tarfile.open(partial, "w") as tar:
            info = tarfile.TarInfo(MANIFEST)
            raw = manifest.to_json()
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
            tar.add(payload, arcname=payload.name)
        os.replace(partial, output)
    return manifest


def _sqlite_copy(source_path: Path, target_path: Path) -> None:
    """Copy one SQLite database over another with the online backup API, in one step.

    One step (pages=-1) reads the source in a single transaction, so the copy is consistent
    however busy its writers are, and replaces the target's pages in one transaction.
    """
    source = sqlite3.connect(source_path)
    try:
        target = sqlite3.connect(target_path)
        try:
            source.backup(target, pages=-1)
        finally:
            target.close()
    finally:
        source.close()


def _backup_sqlite(engine: Engine, payload: Path) -> Manifest:
    _sqlite_copy(_sqlite_path(engine.url), payload)
    # Describe the copy, not the live file: the copy is what a restore will bring back.
    from lockstep.db import make_engine

    copy = make_engine(f"sqlite:///{payload}")
    try:
        with copy.connect() as conn:
            return _manifest_of(conn, "sqlite")
    finally:
        copy.dispose()


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BackupError(
            f"`{name}` was not found on PATH: install the PostgreSQL client tools "
            f"(Debian: apt-get install postgresql-client) matching the server's major version"
        )
    return found


def _libpq_args(url: URL) -> tuple[list[str], dict[str, str]]:
    """pg_dump/pg_restore connection flags and environment for a SQLAlchemy URL (password via env)."""
    args = ["--dbname", url.database or "postgres"]
    if url.host:
        args += ["--host", url.host]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return args, env


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise BackupError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")


def _backup_postgres(engine: Engine, payload: Path) -> Manifest:
    pg_dump = _pg_tool("pg_dump")
    args, env = _libpq_args(engine.url)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            conn.execute(text("SET TRANSACTION READ ONLY"))
            # pg_dump joins this transaction's snapshot: the dump and the manifest see one state.
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            manifest = _manifest_of(conn, "postgresql")
            _run(
                [pg_dump, "--format=custom", f"--snapshot={snapshot}", "--file", str(payload), *args],
                env,
                "pg_dump",
            )
    return manifest


# --- restore ----------------------------------------------------------------------------


def read_manifest(path: Path) -> Manifest:
    """The manifest of a backup file, refusing anything that is not one."""
    try:
        with tarfile.open(path, "r") as tar:
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise ValidationError(f"{path}: no manifest.json: not a Lockstep backup")
            return Manifest.from_json(member.read(), source=str(path))
    except KeyError as exc:
        raise ValidationError(f"{path}: no manifest.json: not a Lockstep backup") from exc
    except tarfile.TarError as exc:
        raise ValidationError(f"{path}: not a Lockstep backup archive ({exc})") from exc
    except IsADirectoryError as exc:
        raise ValidationError(f"{path}: is a folder, not a backup file") from exc


def database_rows(engine: Engine) -> dict[str, int]:
    """Rows per Lockstep table in the database behind `engine` (empty dict: no tables)."""
    with engine.connect() as conn:
        return _state(conn)[3]


def restore_database(*, engine: Engine, backup: Path, force: bool = False) -> RestoreResult:
    """Restore `backup` into the (empty) database behind `engine` and check it against the manifest."""
    backend = _backend(engine)
    manifest = read_manifest(backup)
    if manifest.backend != backend:
        raise ValidationError(
            f"{backup}: a {manifest.backend} backup cannot be restored into {backend}; "
            f"point LOCKSTEP_DATABASE_URL at a {manifest.backend} database"
        )
    existing = database_rows(engine)
    if existing and not force:
        filled = sum(existing.values())
        raise ValidationError(
            f"the target database already holds {len(existing)} Lockstep tables ({filled:,} rows); "
            f"restore into an empty database, or pass --force to replace everything in it"
        )
    with tempfile.TemporaryDirectory(prefix="lockstep-restore-") as tmp:
        with tarfile.open(backup, "r") as tar:
            member = tar.getmember(PAYLOAD[backend])
            source = tar.extractfile(member)
            if source is None:
                raise ValidationError(f"{backup}: {PAYLOAD[backend]} is missing from the archive")
            payload = Path(tmp) / PAYLOAD[backend]
            with open(payload, "wb") as out:
                shutil.copyfileobj(source, out)
        engine.dispose()
        if backend == "sqlite":
            _restore_sqlite(engine, payload)
        else:
            _restore_postgres(engine, payload, force=force)
    engine.dispose()
    return _check_restore(engine, manifest)


def _restore_sqlite(engine: Engine, payload: Path) -> None:
    _sqlite_copy(payload, _sqlite_path(engine.url))


def _restore_postgres(engine: Engine, payload: Path, *, force: bool) -> None:
    pg_restore = _pg_tool("pg_restore")
    args, env = _libpq_args(engine.url)
    if force:
        with engine.begin() as conn:
            # Everything of ours lives in public (pg_trgm included); the dump recreates it.
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    _run(
        [pg_restore, "--no-owner", "--single-transaction", "--exit-on-error", *args, str(payload)],
        env,
        "pg_restore",
    )


def _check_restore(engine: Engine, manifest: Manifest) -> RestoreResult:
    from lockstep.db import read_session
    from lockstep.services.audit import verify

    with engine.connect() as conn:
        revision, head, _entries, counts = _state(conn)
    problems = []
    if revision != manifest.revision:
        problems.append(f"schema revision {revision} instead of {manifest.revision}")
    for table in sorted(set(counts) | set(manifest.tables)):
        got, want = counts.get(table), manifest.tables.get(table)
        if got != want:
            problems.append(f"{table}: {got} rows instead of {want}")
    if head != manifest.audit_head:
        problems.append(f"audit head {head} instead of {manifest.audit_head}")
    with read_session(engine) as session:
        chain = verify(session, expected_head=manifest.audit_head)
    if not chain.ok:
        problems.append(f"audit chain: {chain.problem}")
    if problems:
        raise BackupError("the restored database does not match the backup: " + "; ".join(problems))
    return RestoreResult(manifest=manifest, rows=sum(counts.values()))
