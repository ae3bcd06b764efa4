"""Reading import files: delimiter sniffing, header checks, chunked parsing with row numbers.

Rows are numbered as a person sees them in a spreadsheet: the header is row 1 and every
record after it counts one. That is the file's line number unless a quoted value spans
lines (such a record still counts as one row).

Parsing streams through pyarrow's CSV reader in blocks of a few MiB, so memory does not
grow with the file; it is about four times faster than pandas' chunked reader here and
keeps strings in Arrow buffers instead of one Python object per value.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from lockstep.errors import RowError

DELIMITERS = (",", ";")
BLOCK_BYTES = 8 << 20
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
    """Read the file once in binary: sha256, approximate row count, delimiter and header."""
    path = Path(path)
    digest = hashlib.sha256()
    newlines = 0
    first = b""
    last_byte = b"\n"
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            newlines += block.count(b"\n")
            if len(first) < 65536 and b"\n" not in first:
                first += block[: 65536 - len(first)]
            last_byte = block[-1:]
    lines = newlines + (0 if last_byte == b"\n" else 1)
    header_bytes = first.split(b"\n", 1)[0].rstrip(b"\r")
    if not header_bytes.strip(b"\xef\xbb\xbf \t"):
        raise FileRejected([RowError(1, "", "", "the file is empty: the first line must name the columns")])
    try:
        header_line = header_bytes.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileRejected(
            [RowError(1, "", repr(header_bytes[:60]), "the header is not UTF-8 text")]
        ) from None
    delimiter = sniff_delimiter(header_line)
    return CsvFile(
        path, delimiter, split_header(header_line, delimiter), digest.hexdigest(), max(lines - 1, 0)
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
    skipped but counted.
    """
    names = list(info.columns)
    bad: list[RowError] = []
    bad_numbers: list[int] = []

    def on_invalid(row) -> str:
        bad_numbers.append(row.number)
        bad.append(
            RowError(
                row.number,
                "",
                row.text[:80],
                f"expected {row.expected_columns} fields, found {row.actual_columns}",
            )
        )
        return "skip"

    try:
        reader = pacsv.open_csv(
            info.path,
            # Threads would lose the record numbers the invalid-row handler reports.
            read_options=pacsv.ReadOptions(
                use_threads=False, block_size=block_bytes, column_names=names, skip_rows=1
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
        raise FileRejected([*bad, _arrow_error(info, 0, exc)]) from None
    done = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as exc:
            raise FileRejected([*bad, _arrow_error(info, done, exc)]) from None
        rows = _row_numbers(done, len(batch), bad_numbers)
        done += len(batch)
        frame = pd.DataFrame({n: _trim(batch.column(i)) for i, n in enumerate(names)})
        blank = np.ones(len(frame), dtype=bool)
        for n in names:
            blank &= (frame[n] == "").to_numpy()
        if blank.any():
            frame, rows = frame[~blank].reset_index(drop=True), rows[~blank]
        yield frame, rows
    if bad:
        raise FileRejected(bad)


def _trim(column: pa.Array) -> pd.Series:
    return pd.Series(pc.utf8_trim_whitespace(column), dtype="str")


def _row_numbers(first_ordinal: int, n: int, bad_numbers: list[int]) -> np.ndarray:
    """Row numbers of the n good records after `first_ordinal` good ones, skipping bad records."""
    ordinals = np.arange(first_ordinal, first_ordinal + n, dtype=np.int64)
    if not bad_numbers:
        return ordinals + 2
    bad = np.sort(np.asarray(bad_numbers, dtype=np.int64))
    # Good records before the i-th bad one: its number - 2 (header, 1-based) - i earlier bad ones.
    good_before_bad = bad - 2 - np.arange(len(bad))
    return ordinals + 2 + np.searchsorted(good_before_bad, ordinals, side="right")


def _arrow_error(info: CsvFile, done: int, exc: Exception) -> RowError:
    text = str(exc)
    if "UTF8" in text or "utf8" in text.lower():
        row, value = _first_non_utf8_line(info.path)
        return RowError(row, "", value, "not valid UTF-8 text (save the file as UTF-8)")
    return RowError(done + 2, "", "", f"the file cannot be read as CSV near this row: {text}")


def _first_non_utf8_line(path: Path) -> tuple[int, str]:
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number, repr(line[:60])
    return 0, ""


def parse_timestamps(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 dates or datetimes (Z/offset optional) as naive UTC datetime64[us], plus a bad mask."""
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
    return out, bad


def format_timestamps(stamps: np.ndarray) -> list[str]:
    """'YYYY-MM-DD HH:MM:SS.ffffff': how SQLAlchemy stores DateTime on SQLite, and valid PostgreSQL input."""
    return pa.array(stamps.astype("datetime64[us]")).cast(pa.string()).to_pylist()
