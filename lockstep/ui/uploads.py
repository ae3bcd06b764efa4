"""Uploads on the pages: an uploaded CSV or XLSX file through the same import service as the CLI.

The importers read from a path (CSV streams in blocks, XLSX needs the file), so the upload
is written to a private temporary directory under its own file name (which the audit entry
records) and removed afterwards.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from lockstep.errors import ImportRejected, LockstepError
from lockstep.exports import import_errors_csv
from lockstep.permissions import Actor, can
from lockstep.services import imports
from lockstep.ui.data import clear_after_write, engine

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


def import_form(actor: Actor) -> None:
    """The "Import tenants or events" expander, for roles that may import (nothing otherwise)."""
    if not can(actor, "import.run"):
        return
    with st.expander("Import tenants or events (CSV or XLSX)"):
        st.caption(
            "A CSV or XLSX file, checked in full before anything is written (docs/csv-formats.md). "
            "Dates are ISO 8601 unless a date format is given; XLSX reads the first sheet unless named."
        )
        with st.form("import_file"):
            kind = st.radio("File holds", KINDS, horizontal=True)
            uploaded = st.file_uploader("File", type=TYPES)
            c1, c2 = st.columns(2)
            date_format = c1.text_input("Date format (events)", placeholder="%d/%m/%Y, %m/%d/%Y or excel")
            sheet = c2.text_input("Sheet (XLSX)", placeholder="first sheet")
            go = st.form_submit_button("Import")
        if not go or uploaded is None:
            return
        try:
            outcome = import_upload(
                engine(),
                kind=kind,
                file_name=uploaded.name,
                data=uploaded.getvalue(),
                actor=actor,
                date_format=date_format.strip(),
                sheet=sheet.strip(),
            )
        except LockstepError as exc:
            st.error(str(exc))
            return
        if outcome.ok:
            clear_after_write()
            st.success(outcome.message)
            return
        st.error(outcome.message)
        st.caption("By column and reason")
        st.dataframe(outcome.summary, hide_index=True, width="stretch", key="import_summary")
        st.caption(f"The first {len(outcome.errors)} bad values by row")
        st.dataframe(outcome.errors, hide_index=True, width="stretch", key="import_errors")
        st.download_button(
            "Download every error (CSV)",
            outcome.error_file,
            file_name=f"errors-{uploaded.name.rsplit('.', 1)[0]}.csv",
            mime="text/csv",
            key="import_errors_csv",
        )
