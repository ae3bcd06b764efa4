"""Uploads on the pages: an uploaded CSV or XLSX file through the same import service as the CLI.

The importers read from a path (CSV streams in blocks, XLSX needs the file), so the upload
is written to a private temporary directory under its own file name (which the audit entry
records) and removed afterwards.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from lockstep.errors import ImportRejected
from lockstep.exports import import_errors_csv
from lockstep.permissions import Actor
from lockstep.services import imports

KINDS = ("events", "tenants")
TYPES = ["csv", "xlsx"]


@dataclass
class UploadOutcome:
    """What an upload did: the import's result, or the refusal with its error file (CSV bytes)."""

    message: str
    ok: bool
    summary: list[dict]
    errors: list[dict]
    error_file: bytes | None = None


def import_upload(
    engine,
    *,
    kind: str,
    file_name: str,
    data: bytes,
    actor: Actor,
    date_format: str | None = None,
    sheet: str | None = None,
) -> UploadOutcome:
    """Import an uploaded file of `kind` (tenants or events); a refusal comes back with every error."""
    name = Path(file_name).name or "upload.csv"
    options: dict = {"sheet": sheet or None, "keep_all_errors": True}
    if kind == "events":
        options["date_format"] = date_format or None
    fn = imports.import_events if kind == "events" else imports.import_tenants
    with tempfile.TemporaryDirectory(prefix="lockstep-upload-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            result = fn(engine=engine, path=path, actor=actor, **options)
        except ImportRejected as exc:
            every = exc.every_error or exc.errors
            return UploadOutcome(
                f"{name}: {exc.total_errors} bad value(s); nothing was imported.",
                False,
                [
                    {
                        "column": g.column or "(whole row)",
                        "reason": g.kind,
                        "count": g.count,
                        "first rows": ", ".join(map(str, g.first_rows)),
                    }
                    for g in exc.summary
                ],
                [
                    {"row": e.row, "column": e.column, "value": e.value, "reason": e.reason}
                    for e in exc.errors
                ],
                import_errors_csv(every),
            )
    return UploadOutcome(
        f"{name}: {result.rows} row(s) read; added {result.added}, updated {result.updated}, "
        f"skipped {result.skipped} already present.",
        True,
        [],
        [],
    )
