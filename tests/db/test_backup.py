"""db backup / db restore: a consistent copy while another process writes, restored and checked.

The writer is a real OS process adding customer notes, each note and its audit entry in one
transaction. A torn copy (tables copied at different moments) would show as a note count
that differs from the count of `note.add` audit entries, or as a broken chain.
"""

from __future__ import annotations

import multiprocessing as mp
import tarfile

import pytest
from sqlalchemy import func, select, text

from lockstep import backup
from lockstep.backup import BackupError, backup_database, database_rows, read_manifest, restore_database
from lockstep.cli import EXIT_INVALID, EXIT_OK, main
from lockstep.config import ROOT
from lockstep.db import make_engine, read_session
from lockstep.demo import load_demo
from lockstep.errors import ValidationError
from lockstep.models import AuditEntry, TenantNote
from lockstep.permissions import SYSTEM, Actor
from lockstep.plan import sync_plan_file
from lockstep.services import audit
from tests.conftest import new_pg_database

PLAN = ROOT / "plan" / "90-day-plan.yaml"
WAIT = 120  # seconds: only so that a broken run fails instead of hanging

pytestmark = pytest.mark.usefixtures("cheap_hashing")


@pytest.fixture
def loaded(engine):
    """The shipped plan and a small demo: every table has rows, the audit chain is long."""
    sync_plan_file(PLAN, engine=engine)
    load_demo(engine=engine, tenants=200, seed=3, actor=SYSTEM)
    return engine


@pytest.fixture
def empty_target(backend, tmp_path, request):
    """URL of an empty database (no tables) on the same backend."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'restored.db'}"
    return new_pg_database(request)


def _table_contents(engine) -> dict[str, list[tuple]]:
    """Every row of every Lockstep table, sorted, as plain tuples."""
    from lockstep.models import Base

    out = {}
    with engine.connect() as conn:
        for table in sorted(database_rows(engine)):
            if table == "alembic_version":
                rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            else:
                rows = conn.execute(Base.metadata.tables[table].select()).all()
            out[table] = sorted((tuple(map(repr, r)) for r in rows), key=repr)
    return out


def _write_notes(url: str, started, stop, written) -> None:
    """A second app process: add notes until told to stop; report how many it added."""
    from lockstep.db import write_session
    from lockstep.models import Tenant
    from lockstep.services.notes import add_note

    engine = make_engine(url)
    manager = Actor("admin@lockstep.example", "admin")
    with read_session(engine) as s:
        tenants = s.scalars(select(Tenant.external_id).order_by(Tenant.external_id).limit(50)).all()
    n = 0
    try:
        while not stop.is_set():
            with write_session(engine) as session:
                add_note(session=session, actor=manager, tenant_external_id=tenants[n % 50], body=f"note {n}")
            n += 1
            if n == 5:
                started.set()
    finally:
        started.set()
        written.value = n
        engine.dispose()


def test_backup_while_writing_restores_every_table_and_the_audit_head(loaded, empty_target, tmp_path):
    ctx = mp.get_context("spawn")
    started, stop, written = ctx.Event(), ctx.Event(), ctx.Value("i", 0)
    writer = ctx.Process(
        target=_write_notes, args=(loaded.url.render_as_string(False), started, stop, written)
    )
    writer.start()
    try:
        assert started.wait(WAIT), "the writer never got going"
        out = tmp_path / "lockstep.backup"
        manifest = backup_database(engine=loaded, output=out)
    finally:
        stop.set()
        writer.join(WAIT)
    assert writer.exitcode == 0
    assert 5 <= manifest.tables["tenant_notes"] <= written.value

    target = make_engine(empty_target)
    try:
        result = restore_database(engine=target, backup=out)
        assert result.manifest == manifest
        assert database_rows(target) == manifest.tables
        with read_session(target) as s:
            notes = s.scalar(select(func.count()).select_from(TenantNote))
            note_audits = s.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "note.add")
            )
            # One transaction wrote each note with its audit entry: a consistent copy has both or neither.
            assert notes == note_audits == manifest.tables["tenant_notes"]
            assert audit.verify(s, expected_head=manifest.audit_head).ok
    finally:
        target.dispose()


def test_restored_database_equals_the_source_row_for_row(loaded, empty_target, tmp_path):
    out = tmp_path / "quiet.backup"
    backup_database(engine=loaded, output=out)
    target = make_engine(empty_target)
    try:
        restore_database(engine=target, backup=out)
        assert _table_contents(target) == _table_contents(loaded)
    finally:
        target.dispose()


def test_restore_refuses_a_database_that_is_not_empty_unless_forced(loaded, tmp_path):
    out = tmp_path / "self.backup"
    manifest = backup_database(engine=loaded, output=out)
    before = database_rows(loaded)
    with pytest.raises(ValidationError, match="already holds .* Lockstep tables.*--force"):
        restore_database(engine=loaded, backup=out)
    assert database_rows(loaded) == before

    # Forced: what was added after the backup is gone, the backup's state is back.
    from lockstep.db import write_session
    from lockstep.services.notes import add_note

    with write_session(loaded) as session:
        tenant = session.execute(text("SELECT external_id FROM tenants LIMIT 1")).scalar_one()
        add_note(
            session=session,
            actor=Actor("admin@lockstep.example", "admin"),
            tenant_external_id=tenant,
            body="x",
        )
    result = restore_database(engine=loaded, backup=out, force=True)
    assert database_rows(loaded) == manifest.tables
    assert result.manifest.audit_head == manifest.audit_head


def test_a_file_that_is_not_a_backup_is_refused_by_name(engine, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    with pytest.raises(ValidationError, match="notes.txt: not a Lockstep backup"):
        restore_database(engine=engine, backup=junk)
    with pytest.raises(ValidationError, match="is a folder"):
        read_manifest(tmp_path)


def test_a_backup_of_the_other_backend_is_refused(engine, backend, tmp_path):
    other = "postgresql" if backend == "sqlite" else "sqlite"
    fake = tmp_path / "other.backup"
    manifest = backup.Manifest(other, "2020-06-30T00:00:00", "0005", audit.GENESIS, 0, {})
    with tarfile.open(fake, "w") as tar:
        import io

        raw = manifest.to_json()
        info = tarfile.TarInfo(backup.MANIFEST)
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    with pytest.raises(ValidationError, match=f"a {other} backup cannot be restored into {backend}"):
        restore_database(engine=engine, backup=fake)


# The payload is edited with sqlite3; the check after a restore is the same code on both backends.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_tampered_backup_fails_the_check_after_restore(loaded, empty_target, tmp_path, backend):
    import sqlite3

    out = tmp_path / "lockstep.backup"
    backup_database(engine=loaded, output=out)
    work = tmp_path / "unpacked"
    with tarfile.open(out) as tar:
        tar.extractall(work, filter="data")
    db = sqlite3.connect(work / "database.sqlite3")
    db.execute("DELETE FROM tenant_notes")
    db.execute("UPDATE audit_log SET actor = 'someone-else' WHERE id = 3")
    db.commit()
    db.close()
    tampered = tmp_path / "tampered.backup"
    with tarfile.open(tampered, "w") as tar:
        tar.add(work / "manifest.json", arcname="manifest.json")
        tar.add(work / "database.sqlite3", arcname="database.sqlite3")
    target = make_engine(empty_target)
    try:
        with pytest.raises(BackupError, match="audit chain"):
            restore_database(engine=target, backup=tampered)
    finally:
        target.dispose()


def test_missing_pg_dump_names_the_tool(monkeypatch):
    monkeypatch.setattr(backup.shutil, "which", lambda name: None)
    with pytest.raises(BackupError, match="`pg_dump` was not found on PATH.*postgresql-client"):
        backup._pg_tool("pg_dump")


def test_cli_backup_then_restore(loaded, empty_target, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cli.backup"
    monkeypatch.setenv("LOCKSTEP_DATABASE_URL", loaded.url.render_as_string(False))
    from lockstep.config import get_settings

    get_settings.cache_clear()
    assert main(["db", "backup", "-o", str(out)]) == EXIT_OK
    assert "audit head" in capsys.readouterr().out
    monkeypatch.setenv("LOCKSTEP_DATABASE_URL", empty_target)
    get_settings.cache_clear()
    assert main(["db", "restore", str(out)]) == EXIT_OK
    assert "audit log intact" in capsys.readouterr().out
    # A second restore into the now-filled database is refused with exit 1, naming --force.
    assert main(["db", "restore", str(out)]) == EXIT_INVALID
    assert "--force" in capsys.readouterr().err
    get_settings.cache_clear()
