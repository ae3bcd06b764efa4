"""Reading XLSX import files: one sheet as the same rows of trimmed text a CSV file gives.

The first sheet is read unless a sheet is named. Its first non-empty row names the
columns; row numbers are the sheet's own (what Excel shows at the left), so blank rows
above the header or between records keep their numbers. Cells become text the way the
CSV rules expect it: a date or date-and-time cell becomes ISO 8601 (`2020-05-01T10:30:00`,
read as UTC), a whole number loses its `.0` (`12000`), other numbers keep their digits
(`43952.5`: an unformatted Excel date, which the date rules refuse unless asked to read
Excel serial numbers), TRUE/FALSE stay words. Everything after that (header check, value
rules, report) is the CSV path's.

python-calamine (Rust) reads the sheet: 200,000 rows about 28 times faster than openpyxl
in read-only mode, for a little more memory (benchmarks/README.md, "XLSX readers"). It
reads the whole sheet at once, so memory grows with the sheet.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lockstep.csvio import FileRejected
from lockstep.errors import RowError

SUFFIXES = (".xlsx", ".xlsm")
ZIP_MAGIC = b"PK\x03\x04"
CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class XlsxFile:
    """One sheet read into memory: its header, where the header is, and the cells below it."""

    path: Path
    sheet: str
    columns: tuple[str, ...]
    sha256: str
    header_row: int
    cells: list[list]

    @property
    def approx_rows(self) -> int:
        """Rows below the header (blank ones included)."""
        return max(len(self.cells) - self.header_row, 0)


def is_workbook(path: Path) -> bool:
    """True for a file named .xlsx or .xlsm (read as a workbook; anything else is read as CSV)."""
    return path.suffix.lower() in SUFFIXES


def looks_like_zip(path: Path) -> bool:
    """True when the file starts like a ZIP archive (an XLSX saved under a .csv name, say)."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == ZIP_MAGIC
    except OSError:
        return False


def inspect_workbook(path: str | Path, sheet: str | None = None) -> XlsxFile:
    """Open the workbook, pick the sheet, find the header row; FileRejected when any of it fails."""
    from python_calamine import CalamineWorkbook

    path = Path(path)
    if path.is_dir():
        raise FileRejected([RowError(0, "", "", "is a directory, not a file: name the CSV or XLSX file")])
    data = path.read_bytes()
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        names = book.sheet_names
        if sheet is None:
            if not names:
                raise FileRejected([RowError(0, "", "", "the workbook has no sheets")])
            sheet = names[0]
        elif sheet not in names:
            raise FileRejected(
                [RowError(0, "", sheet, f"no sheet named {sheet!r} (sheets: {', '.join(names)})")]
            )
        cells = book.get_sheet_by_name(sheet).to_python(skip_empty_area=False)
    except FileRejected:
        raise
    except Exception as exc:  # calamine raises its own errors, zip and XML errors alike
        raise FileRejected(
            [RowError(0, "", "", f"cannot be read as an XLSX workbook ({type(exc).__name__}: {exc})")]
        ) from None
    header_row = next((i + 1 for i, row in enumerate(cells) if any(_text(v) for v in row)), 0)
    if not header_row:
        why = f"sheet {sheet!r} is empty: its first row must name the columns"
        raise FileRejected([RowError(1, "", "", why)])
    header = [_text(v).lower() for v in cells[header_row - 1]]
    while header and not header[-1]:
        header.pop()
    return XlsxFile(path, sheet, tuple(header), hashlib.sha256(data).hexdigest(), header_row, cells)


def iter_chunks(info: XlsxFile, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Yield (frame of trimmed strings, sheet row numbers) per chunk; blank rows are skipped.

    A value in a column without a header is reported like a CSV record with too many
    fields, after every chunk has been read (FileRejected).
    """
    width = len(info.columns)
    bad: list[RowError] = []
    body = info.cells[info.header_row :]
    for start in range(0, len(body), chunk_rows):
        part = body[start : start + chunk_rows]
        texts = [[_text(v) for v in row] for row in part]
        numbers = np.arange(start, start + len(part), dtype=np.int64) + info.header_row + 1
        keep = []
        for i, row in enumerate(texts):
            extra = [v for v in row[width:] if v]
            if extra:
                bad.append(
                    RowError(
                        int(numbers[i]),
                        "",
                        extra[0][:80],
                        f"a value in a column with no header (the header names {width} columns)",
                        kind="value outside the named columns",
                    )
                )
                continue
            if any(row[:width]):
                keep.append(i)
        frame = pd.DataFrame(
            {
                name: pd.Series([texts[i][c] if c < len(texts[i]) else "" for i in keep], dtype="str")
                for c, name in enumerate(info.columns)
            }
        )
        yield frame, numbers[keep]
    if bad:
        raise FileRejected(bad)


def _text(value) -> str:
    """One cell as the text a CSV file would hold (see the module docstring)."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value).strip()
