"""Reading import files: delimiter sniffing, header checks, chunked parsing with row numbers.

Rows are numbered as a person sees them in a spreadsheet: the header is row 1 (or the
row after the blank lines above it) and every record after it counts one. That is the
file's line number unless a quoted value spans lines (such a record still counts as one row).

Parsing streams through pyarrow's CSV reader in blocks of a few MiB, so memory does not
grow with the file; it is about four times faster than pandas' chunked reader here and
keeps strings in Arrow buffers instead of one Python object per value.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from lockstep.errors import RowError, ValidationError

DELIMITERS = (",", ";")
# C0 controls and DEL, except tab, line feed and carriage return (allowed inside notes).
CONTROL_CHARS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
# --date-format excel: serial day numbers of Excel's 1900 date system (day 1 is 1900-01-01;
# counting from 1899-12-30 absorbs Excel's phantom 1900-02-29 for every date after it).
EXCEL = "excel"
EXCEL_EPOCH = pd.Timestamp("1899-12-30")
EXCEL_MAX = 2_958_466  # 9999-12-31
SERIAL = r"^\d{1,7}(?:\.\d+)?$"
SERIAL_RE = re.compile(SERIAL)
# 05/06/2020, 5.6.20, 05-06-2020 (optionally with a time): the layouts that are misread silently elsewhere.
AMBIGUOUS_DATE = re.compile(r"(\d{1,2})([./-])(\d{1,2})\2(\d{2}|\d{4})(?:[ T].*)?")
BLOCK_BYTES = 8 << 20
# The header is looked for in the file's first MiB (after any blank lines).
HEAD_BYTES = 1 << 20
# A value longer than this is refused before the type checks see it (no column allows more).
FIELD_LIMIT = 100_000
# ISO 8601 calendar date, optional time (minutes, seconds, fraction) and Z or offset.
ISO_TIMESTAMP = (
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?$"
)


class FileRejected(Exception):
    """The file cannot be read as a table at all; carries the errors found so far."""

    def __init__(self, errors: list[RowError]):
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class CsvFile:
    """What a first cheap pass learns about a file: layout, digest and a row estimate."""

    path: Path
    delimiter: str
    columns: tuple[str, ...]
    sha256: str
    approx_rows: int
    # The header's row number: 1 unless blank lines come before it.
    header_row: int = 1
    # An odd number of '"' in the file: some quoted value may be left open (see quote_errors).
    odd_quotes: bool = False


def sniff_delimiter(header_line: str) -> str:
    """',' or ';': whichever separates more header fields outside quotes (',' on a tie)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in header_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    return ";" if counts[";"] > counts[","] else ","


def split_header(header_line: str, delimiter: str) -> tuple[str, ...]:
    """Header names, unquoted, trimmed and lower-cased (so 'Tenant_ID ' still matches)."""
    fields = next(csv.reader([header_line], delimiter=delimiter), [])
    return tuple(f.strip().lower() for f in fields)


def inspect_file(path: str | Path) -> CsvFile:
    """Read the file once in binary: sha256, approximate row count, delimiter, header and its row."""
    path = Path(path)
    if path.is_dir():
        raise FileRejected([RowError(0, "", "", "is a directory, not a file: name the CSV or XLSX file")])
    digest = hashlib.sha256()
    newlines = quotes = 0
    first = b""
    last_byte = b"\n"
    try:
        fh = path.open("rb")
    except PermissionError:
        raise FileRejected([RowError(0, "", "", "cannot be read (permission denied)")]) from None
    with fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            newlines += block.count(b"\n")
            quotes += block.count(b'"')
            if len(first) < HEAD_BYTES:
                first += block[: HEAD_BYTES - len(first)]
            last_byte = block[-1:]
    lines = newlines + (0 if last_byte == b"\n" else 1)
    header_row, header_bytes = 0, b""
    # Blank lines above the header are skipped (and counted, so row numbers stay line numbers).
    for header_row, raw in enumerate(first.split(b"\n"), start=1):
        header_bytes = raw.rstrip(b"\r")
        if header_row == 1:
            header_bytes = header_bytes.removeprefix(b"\xef\xbb\xbf")
        if header_bytes.strip(b" \t"):
            break
    if not header_bytes.strip(b" \t"):
        raise FileRejected([RowError(1, "", "", "the file is empty: the first line must name the columns")])
    if b"\x00" in header_bytes:
        why = "the header is not UTF-8 text (binary, or UTF-16?)"
        raise FileRejected([RowError(header_row, "", repr(header_bytes[:60]), why)])
    try:
        header_line = header_bytes.decode("utf-8")
    except UnicodeDecodeError:
        why = "the header is not UTF-8 text (save the file as UTF-8)"
        raise FileRejected([RowError(header_row, "", repr(header_bytes[:60]), why)]) from None
    delimiter = sniff_delimiter(header_line)
    return CsvFile(
        path,
        delimiter,
        split_header(header_line, delimiter),
        digest.hexdigest(),
        max(lines - header_row, 0),
        header_row,
        quotes % 2 == 1,
    )


def check_header(
    columns: tuple[str, ...], required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> list[RowError]:
    """One error per missing, unknown, misspelled or repeated column (row 1)."""
    errors: list[RowError] = []
    known = required + optional
    missing = [c for c in required if c not in columns]
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            errors.append(RowError(1, name, name, "this column appears more than once"))
            continue
        seen.add(name)
        if name in known:
            continue
        close = difflib.get_close_matches(name, [c for c in known if c not in columns], n=1, cutoff=0.6)
        if close and close[0] in missing:
            missing.remove(close[0])
            errors.append(RowError(1, close[0], name, f"column '{name}' should be named '{close[0]}'"))
        elif close:
            errors.append(RowError(1, name, name, f"unknown column (did you mean '{close[0]}'?)"))
        else:
            errors.append(RowError(1, name, name, f"unknown column (columns: {', '.join(known)})"))
    for name in missing:
        errors.append(RowError(1, name, "", f"missing column '{name}' (columns: {', '.join(known)})"))
    return errors


def iter_chunks(info: CsvFile, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Yield (frame of trimmed strings, row numbers) per block; bad records raise FileRejected at the end.

    A record with the wrong number of fields is reported (row, expected, found) and the
    rest of the file is still read, so one pass lists every such record. Blank lines are
    skipped but counted. When the quoting looks suspect (an odd number of quotes, a value
    spanning lines next to broken records) the file is re-read by quote_errors, which names
    the row where a quote opened rather than the rows it swallowed.
    """
    names = list(info.columns)
    bad: list[RowError] = []
    bad_numbers: list[int] = []
    multiline = False

    def on_invalid(row) -> str:
        bad_numbers.append(row.number)
        bad.append(
            RowError(
                row.number,
                "",
                row.text[:80],
                f"expected {row.expected_columns} fields, found {row.actual_columns}",
                kind="wrong number of fields",
            )
        )
        return "skip"

    try:
        reader = pacsv.open_csv(
            info.path,
            # Threads would lose the record numbers the invalid-row handler reports.
            read_options=pacsv.ReadOptions(
                use_threads=False, block_size=block_bytes, column_names=names, skip_rows=info.header_row
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=info.delimiter,
                newlines_in_values=True,
                ignore_empty_lines=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as exc:
        # The reader parses its first block on opening.
        raise FileRejected(quote_errors(info) or [*bad, _arrow_error(info, 0, exc)]) from None
    done = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as exc:
            raise FileRejected(quote_errors(info) or [*bad, _arrow_error(info, done, exc)]) from None
        rows = _row_numbers(done, len(batch), bad_numbers, info.header_row)
        done += len(batch)
        multiline = multiline or any(pc.any(pc.match_substring(c, "\n")).as_py() for c in batch.columns)
        frame = pd.DataFrame({n: _trim(batch.column(i)) for i, n in enumerate(names)})
        blank = np.ones(len(frame), dtype=bool)
        for n in names:
            blank &= (frame[n] == "").to_numpy()
        if blank.any():
            frame, rows = frame[~blank].reset_index(drop=True), rows[~blank]
        yield frame, rows
    quoting = quote_errors(info) if info.odd_quotes or multiline else []
    if quoting or bad:
        raise FileRejected(quoting + bad)


def quote_errors(info: CsvFile) -> list[RowError]:
    """Re-read the file with Python's strict csv reader and report where the quoting goes wrong.

    Three things are named at the row where the record starts: a quote that is never
    closed (the reader would otherwise take the rest of the file as one value), a quoted
    value whose continuation lines look like whole records (a closing quote is missing
    further down), and a value too long to be anything but such an accident. Slower than
    the Arrow reader, so it runs only when the quoting looks suspect.
    """
    errors: list[RowError] = []
    width = len(info.columns)
    with info.path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        for _ in range(info.header_row):
            fh.readline()
        reader = csv.reader(fh, delimiter=info.delimiter, strict=True)
        row = info.header_row
        while True:
            line = info.header_row + reader.line_num + 1
            row += 1
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                end = info.header_row + reader.line_num
                why = _quote_reason(str(exc), line, end)
                errors.append(RowError(row, "", "", why, kind="broken quoting"))
                break
            for name, value in zip(info.columns, record, strict=False):
                if "\n" not in value and "\r" not in value:
                    continue
                swallowed = [s for s in value.splitlines()[1:] if s.count(info.delimiter) >= width - 1]
                if swallowed:
                    errors.append(
                        RowError(
                            row,
                            name,
                            value[:60],
                            f"the quoted value opened on this row (line {line}) runs on over "
                            f"{len(value.splitlines()) - 1} line break(s) and holds what looks like whole "
                            "rows "
                            f"({swallowed[0][:40]!r}): a closing quote is probably missing",
                            kind="broken quoting",
                        )
                    )
                    return errors
    return errors


def _quote_reason(message: str, line: int, end: int) -> str:
    if "unexpected end of data" in message or "EOF" in message:
        return (
            f"the quoted value opened on this row (line {line}) is never closed: add the closing quote "
            '(a quote inside a value is written twice: "say ""hi""")'
        )
    if "field larger than field limit" in message:
        return f"a value on this row is longer than {csv.field_size_limit():,} characters"
    if end > line:
        return (
            f"the quoted value opened on this row (line {line}) runs on to line {end}, where the quoting "
            f"breaks ({message}): a closing quote is probably missing on this row"
        )
    return (
        f"the quoting on this row (line {line}) is malformed ({message}): a value with a quote in it "
        'must be quoted as a whole, with the quote doubled: "say ""hi"""'
    )


def _trim(column: pa.Array) -> pd.Series:
    return pd.Series(pc.utf8_trim_whitespace(column), dtype="str")


def _row_numbers(first_ordinal: int, n: int, bad_numbers: list[int], header_row: int = 1) -> np.ndarray:
    """Row numbers of the n good records after `first_ordinal` good ones, skipping bad records."""
    first = header_row + 1
    ordinals = np.arange(first_ordinal, first_ordinal + n, dtype=np.int64)
    if not bad_numbers:
        return ordinals + first
    bad = np.sort(np.asarray(bad_numbers, dtype=np.int64))
    # Good records before the i-th bad one: its number - the first record's row - i earlier bad ones.
    good_before_bad = bad - first - np.arange(len(bad))
    return ordinals + first + np.searchsorted(good_before_bad, ordinals, side="right")


def _arrow_error(info: CsvFile, done: int, exc: Exception) -> RowError:
    text = str(exc)
    if "UTF8" in text or "utf8" in text.lower():
        row, value = _first_non_utf8_line(info.path)
        return RowError(row, "", value, "not valid UTF-8 text (save the file as UTF-8)", kind="not UTF-8")
    return RowError(
        done + info.header_row + 1, "", "", f"the file cannot be read as CSV near this row: {text}",
        kind="not CSV",
    )


def _first_non_utf8_line(path: Path) -> tuple[int, str]:
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number, repr(line[:60])
    return 0, ""


def check_date_format(date_format: str | None) -> None:
    """Refuse a --date-format that cannot name a day unambiguously (ValidationError saying what it needs)."""
    if date_format is None or date_format == EXCEL:
        return
    parts = ("%d", ("%m", "%b", "%B"), ("%Y", "%y"))
    if not all(any(p in date_format for p in ((w,) if isinstance(w, str) else w)) for w in parts):
        raise ValidationError(
            f"date format {date_format!r} must name the day (%d), the month (%m) and the year (%Y), "
            "e.g. %d/%m/%Y or %m/%d/%Y %H:%M; or 'excel' for Excel serial day numbers"
        )


def parse_timestamps(values: pd.Series, date_format: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Dates or datetimes as naive UTC datetime64[us], plus a bad mask.

    ISO 8601 (Z/offset optional) is always read. `date_format` adds one more layout: a
    strptime pattern such as '%d/%m/%Y' (times without an offset are UTC), or 'excel' for
    Excel serial day numbers (1900 date system, the fraction is the time of day, UTC).
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = values.dt.tz_convert("UTC").dt.tz_localize(None) if values.dt.tz is not None else values
        out = stamps.to_numpy(dtype="datetime64[us]")
        return out, np.isnat(out)
    text = values.astype("str")
    shape_ok = np.asarray(pc.match_substring_regex(pa.array(text, type=pa.string()), ISO_TIMESTAMP))
    parsed = pd.to_datetime(
        text.str.replace(",", ".", regex=False), format="ISO8601", utc=True, errors="coerce"
    )
    out = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[us]", copy=True)
    bad = ~shape_ok | np.isnat(out)
    out[bad] = np.datetime64("NaT")
    if date_format is not None and bad.any():
        other = text[bad]
        if date_format == EXCEL:
            serial = pd.to_numeric(other.where(other.str.fullmatch(SERIAL)), errors="coerce").to_numpy()
            usable = (serial >= 1) & (serial < EXCEL_MAX)
            # Rounded to the millisecond: a time typed as 10:30 is stored as 0.4375 of a day, give or take.
            millis = np.round(np.where(usable, serial, 0) * 86_400_000).astype(np.int64)
            alt = np.datetime64("1899-12-30", "ms") + millis.astype("timedelta64[ms]")
            alt = alt.astype("datetime64[us]")
            alt[~usable] = np.datetime64("NaT")
        else:
            alt_parsed = pd.to_datetime(other, format=date_format, errors="coerce", utc=True)
            alt = alt_parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
        out[bad] = alt
        bad = np.isnat(out)
    return out, bad


def timestamp_problem(value: str, date_format: str | None = None) -> str:
    """Why `value` is not a time under `date_format`, and how to fix it (the import's error message)."""
    if date_format == EXCEL:
        return "neither an Excel serial day number (e.g. 43952.5) nor an ISO 8601 date (2020-05-01)"
    if date_format is not None:
        return f"matches neither the date format {date_format!r} nor ISO 8601 (2020-05-01T14:30:00Z)"
    if m := AMBIGUOUS_DATE.fullmatch(value):
        sep, year = m.group(2), "%Y" if len(m.group(4)) == 4 else "%y"
        return (
            f"not ISO 8601, and a date such as {value!r} can be day first or month first: write it "
            f"as yyyy-mm-dd, or import with --date-format %d{sep}%m{sep}{year} (day first) or "
            f"%m{sep}%d{sep}{year} (month first)"
        )
    if SERIAL_RE.fullmatch(value) and 1 <= float(value) < EXCEL_MAX:
        day = (EXCEL_EPOCH.to_pydatetime() + timedelta(days=float(value))).strftime("%Y-%m-%d")
        return (
            f"looks like an Excel serial date ({day}?): format the column as a date (yyyy-mm-dd) "
            "before saving, or import with --date-format excel"
        )
    return "not a date or time: use ISO 8601, e.g. 2020-05-01 or 2020-05-01T14:30:00Z (or see --date-format)"


def format_timestamps(stamps: np.ndarray) -> list[str]:
    """'YYYY-MM-DD HH:MM:SS.ffffff': how SQLAlchemy stores DateTime on SQLite, and valid PostgreSQL input."""
    return pa.array(stamps.astype("datetime64[us]")).cast(pa.string()).to_pylist()
