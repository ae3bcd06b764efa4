"""Import files that are broken in the ways people's files are: each is refused with the
report (row, column, reason), nothing changes; dates, XLSX, the error summary and file.

Issues #12 (no traceback, dates, XLSX) and #18 (quotes, NUL, directories, blank lines,
note limits, repeated events, the error report at scale). Both backends. Workbooks are
written with openpyxl (requirements-dev.txt: a test tool only; the importer reads them
with python-calamine).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from lockstep.config import ROOT
from lockstep.db import read_session, write_session
from lockstep.errors import ImportRejected, ValidationError
from lockstep.models import RolloutEvent, Tenant
from lockstep.permissions import SYSTEM
from lockstep.queries.rollout import tenant_page
from lockstep.services.imports import import_events, import_tenants
from tests.builders import add_tenants, seed_plan
from tests.db.test_imports import BUSINESS, EVENT_HEADER, FREE, PRO, table_fingerprint

EXAMPLES = ROOT / "data" / "examples"


@pytest.fixture
def db(engine):
    with write_session(engine) as s:
        seed_plan(s)
        add_tenants(s, 10, seed=1)
    return engine


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def rejected(engine, fn, path, **kw) -> ImportRejected:
    """Run the import, expect it refused with every table unchanged; return the rejection."""
    before = table_fingerprint(engine)
    with pytest.raises(ImportRejected) as info:
        fn(engine=engine, path=path, actor=SYSTEM, **kw)
    assert table_fingerprint(engine) == before
    return info.value


def cells(exc: ImportRejected) -> list[tuple[int, str]]:
    return [(e.row, e.column) for e in exc.errors]


# --------------------------------------------------------------------------- #12.1: unknown tenants


def test_example_events_into_a_database_without_those_tenants_name_them(db):
    exc = rejected(db, import_events, EXAMPLES / "events.csv")
    unknown = {e.value for e in exc.errors if e.column == "tenant_id"}
    assert unknown == {"acme-001", "globex-002", "initech-003", "hooli-005"}
    assert all("no tenant with id" in e.reason for e in exc.errors)
    assert [str(g) for g in exc.summary] == [
        "column 'tenant_id': unknown tenant: 9 (rows 2, 3, 4, 5, 6, ...)"
    ]


# --------------------------------------------------------------------------- #18.2: quotes


def test_unterminated_quote_names_the_row_where_it_opened(db, tmp_path):
    path = write(
        tmp_path,
        "e.csv",
        f'{EVENT_HEADER}\n{PRO},encryption,clients_upgraded,2020-05-01,x,"unterminated\n'
        f"{BUSINESS},encryption,clients_upgraded,2020-05-01,x,second\n",
    )
    exc = rejected(db, import_events, path)
    quoting = [e for e in exc.errors if e.kind == "broken quoting"]
    assert [(e.row, e.column) for e in quoting] == [(2, "")]
    assert "opened on this row (line 2) is never closed" in quoting[0].reason


def test_stray_quote_in_a_large_file_names_its_row(db, tmp_path):
    lines = [
        f"{PRO},encryption,clients_upgraded,2020-05-01T00:{i // 60 % 60:02d}:{i % 60:02d},x,n{i}"
        for i in range(3000)
    ]
    lines[1999] = lines[1999].replace(",n1999", ',"stray')
    # A properly quoted note further down: the stray quote pairs with it and swallows rows.
    lines[2500] = lines[2500].replace(",n2500", ',"note, with comma"')
    path = write(tmp_path, "e.csv", EVENT_HEADER + "\n" + "\n".join(lines) + "\n")
    exc = rejected(db, import_events, path)
    quoting = [e for e in exc.errors if e.kind == "broken quoting"]
    assert quoting and quoting[0].row == 2001  # record 2000 below the header
    assert "closing quote is probably missing" in quoting[0].reason or "never closed" in quoting[0].reason


def test_quoted_values_across_lines_and_literal_quotes_still_import(db, tmp_path):
    path = write(
        tmp_path,
        "e.csv",
        f'{EVENT_HEADER}\n{PRO},encryption,clients_upgraded,2020-05-01,x,"two\nlines"\n'
        f'{BUSINESS},encryption,clients_upgraded,2020-05-01,x,a 5" screen\n',
    )
    result = import_events(engine=db, path=path, actor=SYSTEM)
    assert result.added == 2
    with read_session(db) as s:
        notes = set(s.scalars(select(RolloutEvent.note)))
    assert notes == {"two\nlines", 'a 5" screen'}


# --------------------------------------------------------------------------- #18.4: NUL, directories, search


@pytest.mark.parametrize("where", ["note", "tenant_id"])
def test_nul_byte_in_a_value_is_refused(db, tmp_path, where):
    tenant, note = (PRO, "a\x00b") if where == "note" else (f"{PRO}\x00", "n")
    path = write(
        tmp_path, "e.csv", f"{EVENT_HEADER}\n{tenant},encryption,clients_upgraded,2020-05-01,x,{note}\n"
    )
    exc = rejected(db, import_events, path)
    assert (2, where) in cells(exc)
    assert any("U+0000" in e.reason for e in exc.errors)


def test_nul_byte_in_a_tenant_file_is_refused(db, tmp_path):
    path = write(
        tmp_path,
        "t.csv",
        "external_id,name,tier,region,seats,account_manager,client_version,features\n"
        "n-1,Na\x00me,pro,us,5,a@example.com,,\n",
    )
    exc = rejected(db, import_tenants, path)
    assert cells(exc) == [(2, "name")]


def test_a_directory_is_refused_without_a_traceback(db, tmp_path):
    exc = rejected(db, import_events, tmp_path)
    assert exc.errors[0].row == 0 and "is a directory" in str(exc)


def test_nul_in_the_search_box_matches_nothing(db):
    with read_session(db) as s:
        page = tenant_page(session=s, actor=SYSTEM, track="encryption", search="t1\x00")
        assert page.total == 0
        assert tenant_page(session=s, actor=SYSTEM, track="encryption", search="t1-").total > 0


# ------------------------------------------------------------------ #18.9: blank lines, notes, repeats


def test_blank_lines_above_the_header_are_skipped_and_rows_keep_line_numbers(db, tmp_path):
    path = write(
        tmp_path,
        "e.csv",
        f"\n\r\n{EVENT_HEADER}\n{PRO},encryption,clients_upgraded,2020-05-01,x,\n{PRO},encryption,nope,2020-05-02,x,\n",
    )
    exc = rejected(db, import_events, path)
    assert cells(exc) == [(5, "stage")]
    ok = write(tmp_path, "ok.csv", f"\n\n{EVENT_HEADER}\n{PRO},encryption,clients_upgraded,2020-05-01,x,\n")
    assert import_events(engine=db, path=ok, actor=SYSTEM).added == 1


def test_only_blank_lines_is_an_empty_file(db, tmp_path):
    exc = rejected(db, import_events, write(tmp_path, "e.csv", "\n \n\n"))
    assert "the file is empty" in str(exc)


@pytest.mark.parametrize("size", [4001, 9 * 1024 * 1024])
def test_a_note_over_the_limit_is_refused_naming_its_row(db, tmp_path, size):
    note = "n" * size
    path = write(
        tmp_path,
        "e.csv",
        f"{EVENT_HEADER}\n{PRO},encryption,clients_upgraded,2020-05-01,x,ok\n"
        f"{BUSINESS},encryption,clients_upgraded,2020-05-01,x,{note}\n",
    )
    exc = rejected(db, import_events, path)
    assert [e.row for e in exc.errors] == [3]
    assert "too long" in exc.errors[0].reason or "longer than" in exc.errors[0].reason


def test_a_note_at_the_limit_imports(db, tmp_path):
    path = write(
        tmp_path, "e.csv", f"{EVENT_HEADER}\n{PRO},encryption,clients_upgraded,2020-05-01,x,{'n' * 4000}\n"
    )
    assert import_events(engine=db, path=path, actor=SYSTEM).added == 1


def test_rows_differing_only_in_the_note_are_a_conflict(db, tmp_path):
    path = write(
        tmp_path,
        "e.csv",
        f"{EVENT_HEADER}\n{PRO},encryption,clients_upgraded,2020-05-01,x,first\n"
        f"{PRO},encryption,clients_upgraded,2020-05-01T00:00:00Z,x,second\n"
        f"{BUSINESS},encryption,clients_upgraded,2020-05-01,x,same\n"
        f"{BUSINESS},encryption,clients_upgraded,2020-05-01,x,same\n",
    )
    exc = rejected(db, import_events, path)
    assert cells(exc) == [(3, "note")]
    assert "as row 2, with a different note" in exc.errors[0].reason


# --------------------------------------------------------------------------- #12.2: dates


def _dated(tmp_path, when: str) -> Path:
    return write(tmp_path, "e.csv", f"{EVENT_HEADER}\n{PRO},encryption,clients_upgraded,{when},x,\n")


def _stored_time(engine) -> datetime:
    with read_session(engine) as s:
        return s.scalar(select(RolloutEvent.occurred_at))


def test_day_first_dates_are_refused_by_default_with_the_fix(db, tmp_path):
    exc = rejected(db, import_events, _dated(tmp_path, "05/06/2020"))
    assert "--date-format %d/%m/%Y (day first) or %m/%d/%Y (month first)" in exc.errors[0].reason


@pytest.mark.parametrize(
    "fmt, value, expected",
    [
        ("%d/%m/%Y", "05/06/2020", datetime(2020, 6, 5)),
        ("%m/%d/%Y", "05/06/2020", datetime(2020, 5, 6)),
        ("%d.%m.%Y %H:%M", "05.06.2020 14:30", datetime(2020, 6, 5, 14, 30)),
        ("excel", "43987.5", datetime(2020, 6, 5, 12)),
        ("%d/%m/%Y", "2020-06-05T08:00:00+02:00", datetime(2020, 6, 5, 6)),
    ],
)
def test_a_date_format_reads_that_layout(db, tmp_path, fmt, value, expected):
    assert import_events(engine=db, path=_dated(tmp_path, value), actor=SYSTEM, date_format=fmt).added == 1
    assert _stored_time(db) == expected


def test_excel_serial_numbers_are_refused_by_default_with_the_fix(db, tmp_path):
    exc = rejected(db, import_events, _dated(tmp_path, "43987"))
    assert "Excel serial date (2020-06-05?)" in exc.errors[0].reason
    assert "--date-format excel" in exc.errors[0].reason


def test_a_date_format_without_day_month_and_year_is_refused(db, tmp_path):
    with pytest.raises(ValidationError, match="must name the day"):
        import_events(engine=db, path=_dated(tmp_path, "2020"), actor=SYSTEM, date_format="%Y")


# --------------------------------------------------------------------------- #18.6: the report at scale


def test_summary_by_column_and_reason_and_every_error(db, tmp_path):
    lines = [f"ghost-{i},encryption,clients_upgraded,2020-05-01,x," for i in range(300)]
    lines.insert(250, f"{PRO},encryption,clients_upgraded,01/05/2020,x,")
    path = write(tmp_path, "e.csv", EVENT_HEADER + "\n" + "\n".join(lines) + "\n")
    exc = rejected(db, import_events, path, keep_all_errors=True)
    assert exc.total_errors == 301
    assert [(g.column, g.count, g.first_rows) for g in exc.summary] == [
        ("tenant_id", 300, [2, 3, 4, 5, 6]),
        ("occurred_at", 1, [252]),
    ]
    assert len(exc.errors) == 50  # the first 50 by row, all unknown tenants ...
    assert "occurred_at" in str(exc)  # ... but the summary still shows the rare one
    assert len(exc.every_error) == 301
    assert [e.row for e in exc.every_error] == sorted(e.row for e in exc.every_error)


# --------------------------------------------------------------------------- #12.3: XLSX


def xlsx_from_csv(
    csv_path: Path, out: Path, *, sheet: str = "Sheet1", first_sheet: str | None = None
) -> Path:
    """The CSV as a workbook the way Excel saves it: dates as date cells, numbers as numbers."""
    import csv

    wb = Workbook()
    ws = wb.active
    if first_sheet:
        ws.title = first_sheet
        ws.append(["nothing", "here"])
        ws = wb.create_sheet(sheet)
    else:
        ws.title = sheet
    with csv_path.open(newline="") as fh:
        for i, row in enumerate(csv.reader(fh)):
            values: list = []
            for v in row:
                if i and v.isdigit():
                    values.append(int(v))
                elif i and len(v) == 10 and v[4] == "-":
                    values.append(datetime.fromisoformat(v))
                else:
                    values.append(v or None)
            ws.append(values)
    wb.save(out)
    return out


def test_xlsx_examples_import_like_the_csv_and_a_second_import_adds_nothing(engine, tmp_path):
    with write_session(engine) as s:
        seed_plan(s)
    tenants = xlsx_from_csv(EXAMPLES / "tenants.csv", tmp_path / "tenants.xlsx")
    events = xlsx_from_csv(
        EXAMPLES / "events.csv", tmp_path / "events.xlsx", sheet="events", first_sheet="notes"
    )
    assert import_tenants(engine=engine, path=tenants, actor=SYSTEM).added == 5
    assert import_events(engine=engine, path=events, actor=SYSTEM, sheet="events").added == 9
    before = table_fingerprint(engine)
    assert import_tenants(engine=engine, path=tenants, actor=SYSTEM).added == 0
    assert import_events(engine=engine, path=events, actor=SYSTEM, sheet="events").added == 0
    # The same rows from the CSV files are already there too.
    assert import_events(engine=engine, path=EXAMPLES / "events.csv", actor=SYSTEM).added == 0
    assert table_fingerprint(engine) == before
    with read_session(engine) as s:
        assert s.scalar(select(Tenant.seats).where(Tenant.external_id == "acme-001")) == 12000
        assert s.scalar(select(func.count()).select_from(RolloutEvent)) == 9


def test_xlsx_rows_are_the_sheet_rows_and_a_missing_sheet_is_named(db, tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.append([])
    ws.append(EVENT_HEADER.split(","))
    ws.append([PRO, "encryption", "clients_upgraded", datetime(2020, 5, 1), "x", None])
    ws.append([FREE, "e2ee", "pilot", 43987, "x", None])
    wb.save(tmp_path / "e.xlsx")
    exc = rejected(db, import_events, tmp_path / "e.xlsx")
    assert cells(exc) == [(4, "track"), (4, "occurred_at")]
    assert "Excel serial date" in exc.errors[1].reason
    exc = rejected(db, import_events, tmp_path / "e.xlsx", sheet="Events")
    assert "no sheet named 'Events' (sheets: Sheet)" in str(exc)


def test_a_broken_workbook_is_refused(db, tmp_path):
    exc = rejected(db, import_events, write(tmp_path, "e.xlsx", b"PK\x03\x04 not really a zip"))
    assert "cannot be read as an XLSX workbook" in str(exc)
    exc = rejected(db, import_events, write(tmp_path, "e.csv", b"PK\x03\x04 not really a zip"))
    assert "name it .xlsx" in str(exc)


# --------------------------------------------------------------------------- uploads on the Rollout page


def test_upload_imports_xlsx_and_offers_every_error_of_a_refused_csv(db, tmp_path):
    from lockstep.models import AuditEntry
    from lockstep.ui.uploads import import_upload

    lines = [f"ghost-{i},encryption,clients_upgraded,2020-05-01,x," for i in range(60)]
    before = table_fingerprint(db)
    refused = import_upload(
        db,
        kind="events",
        file_name="week.csv",
        data=("\n".join([EVENT_HEADER, *lines]) + "\n").encode(),
        actor=SYSTEM,
    )
    assert not refused.ok and table_fingerprint(db) == before
    assert refused.summary == [
        {"column": "tenant_id", "reason": "unknown tenant", "count": 60, "first rows": "2, 3, 4, 5, 6"}
    ]
    assert len(refused.errors) == 50
    error_lines = refused.error_file.decode("utf-8-sig").splitlines()
    assert len(error_lines) == 61 and error_lines[-1].startswith("61,tenant_id,ghost-59,")

    wb = Workbook()
    wb.active.append(EVENT_HEADER.split(","))
    wb.active.append([PRO, "encryption", "clients_upgraded", "01.05.2020", "upload", None])
    path = tmp_path / "w.xlsx"
    wb.save(path)
    done = import_upload(
        db,
        kind="events",
        file_name="../Week 18.xlsx",
        data=path.read_bytes(),
        actor=SYSTEM,
        date_format="%d.%m.%Y",
    )
    assert done.ok, done.errors
    assert done.message.startswith("Week 18.xlsx: 1 row(s) read; added 1")
    with read_session(db) as s:
        entry = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert entry.action == "import.events" and entry.entity_id == "Week 18.xlsx"
