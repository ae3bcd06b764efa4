"""CSV downloads that are safe to open in a spreadsheet.

A cell whose text starts with =, +, -, @, a tab or a carriage return is read by Excel
and friends as a formula (a tenant named "=HYPERLINK(...)" would run), so such text is
prefixed with a single quote. Quoting follows RFC 4180 (csv.QUOTE_MINIMAL, CRLF line
ends); the bytes are UTF-8 with a BOM so Excel reads accents correctly.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"


def neutralise(value: Any) -> str:
    """One cell as safe text: formula-looking text gets a leading quote; None is empty."""
    if value is None or value is pd.NaT or value is pd.NA:
        return ""
    if isinstance(value, numbers.Number):
        if isinstance(value, float) and math.isnan(value):
            return ""
        # Numbers are data, not formulas: a negative stays a number in the spreadsheet.
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def rows_to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A CSV file (UTF-8 with BOM, CRLF, minimal quoting) of `rows` under `header`."""
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([neutralise(h) for h in header])
    for row in rows:
        writer.writerow([neutralise(v) for v in row])
    return (BOM + buf.getvalue()).encode("utf-8")


def dataframe_to_csv(df: pd.DataFrame) -> bytes:
    """A DataFrame as a spreadsheet-safe CSV file (see rows_to_csv)."""
    return rows_to_csv(list(df.columns), df.itertuples(index=False, name=None))


def import_errors_csv(errors: Iterable) -> bytes:
    """Every bad value of a refused import (RowError objects) as CSV: row, column, value, reason, kind.

    The error file of `import ... --errors-out` and of the upload page; values are the
    file's own text, so they go through the same formula neutralisation as every export.
    """
    return rows_to_csv(
        ("row", "column", "value", "reason", "kind"),
        ((e.row, e.column, e.value, e.reason, e.group) for e in errors),
    )
