from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from lockstep import csvio


def write(tmp_path: Path, text: str | bytes, name: str = "f.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def read_all(path: Path, block_bytes: int = csvio.BLOCK_BYTES) -> tuple[pd.DataFrame, list[int]]:
    info = csvio.inspect_file(path)
    frames, rows = [], []
    for frame, numbers in csvio.iter_chunks(info, block_bytes=block_bytes):
        frames.append(frame)
        rows += numbers.tolist()
    return pd.concat(frames, ignore_index=True), rows


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("a,b,c", ","),
        ("a;b;c", ";"),
        ('"x,y";b;c', ";"),  # the comma is inside quotes
        ("single", ","),
        ("a;b,c", ","),  # a tie goes to the comma
    ],
)
def test_sniff_delimiter(header, expected):
    assert csvio.sniff_delimiter(header) == expected


def test_header_names_are_trimmed_and_lower_cased():
    assert csvio.split_header(' Tenant_ID ;"Track";stage', ";") == ("tenant_id", "track", "stage")


def test_check_header_reports_each_problem_once_naming_the_column():
    errors = csvio.check_header(
        ("external_id", "nmae", "tier", "tier", "colour"), ("external_id", "name", "tier")
    )
    by_column = {e.column: e.reason for e in errors}
    assert by_column["name"] == "column 'nmae' should be named 'name'"
    assert "appears more than once" in by_column["tier"]
    assert by_column["colour"].startswith("unknown column")
    assert all(e.row == 1 for e in errors)
    assert len(errors) == 3


def test_check_header_missing_and_optional_columns():
    errors = csvio.check_header(("tenant_id", "stage"), ("tenant_id", "track", "stage"), ("note",))
    assert [(e.column, e.reason.split(" (")[0]) for e in errors] == [("track", "missing column 'track'")]
    assert (
        csvio.check_header(("tenant_id", "track", "stage"), ("tenant_id", "track", "stage"), ("note",)) == []
    )


def test_inspect_file_digest_rows_and_bom(tmp_path):
    body = "a;b\n1;2\n3;4\n"
    path = write(tmp_path, "\ufeff" + body)
    info = csvio.inspect_file(path)
    assert info.delimiter == ";"
    assert info.columns == ("a", "b")
    assert info.approx_rows == 2
    import hashlib

    assert info.sha256 == hashlib.sha256(("\ufeff" + body).encode()).hexdigest()
    assert csvio.inspect_file(write(tmp_path, "a,b\n1,2", "nonl.csv")).approx_rows == 1


def test_empty_file_is_rejected(tmp_path):
    with pytest.raises(csvio.FileRejected) as err:
        csvio.inspect_file(write(tmp_path, ""))
    assert err.value.errors[0].row == 1


def test_rfc4180_quoting_trimming_and_row_numbers(tmp_path):
    path = write(
        tmp_path,
        'a,b,c\n 1 ,"two, with comma",3\n\n"multi\nline","say ""hi""",x\n4,5,6\n',
    )
    frame, rows = read_all(path)
    assert frame["a"].tolist() == ["1", "multi\nline", "4"]
    assert frame["b"].tolist() == ["two, with comma", 'say "hi"', "5"]
    # Header is row 1; the blank line is row 3 and skipped; the quoted record counts as one row.
    assert rows == [2, 4, 5]


def test_records_with_the_wrong_number_of_fields_are_all_reported(tmp_path):
    path = write(tmp_path, "a,b,c\n1,2,3\n1,2\n4,5,6\n1,2,3,4\n7,8,9\n")
    info = csvio.inspect_file(path)
    seen: list[int] = []
    with pytest.raises(csvio.FileRejected) as err:
        for _, numbers in csvio.iter_chunks(info):
            seen += numbers.tolist()
    # The good records keep their own row numbers around the bad ones.
    assert seen == [2, 4, 6]
    assert [(e.row, e.reason) for e in err.value.errors] == [
        (3, "expected 3 fields, found 2"),
        (5, "expected 3 fields, found 4"),
    ]


def test_row_numbers_stay_right_across_small_blocks(tmp_path):
    lines = ["a,b"] + [f"{i},x" if i % 7 else f"{i}" for i in range(2, 400)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    info = csvio.inspect_file(path)
    seen: list[tuple[int, str]] = []
    with pytest.raises(csvio.FileRejected) as err:
        for frame, numbers in csvio.iter_chunks(info, block_bytes=64):
            seen += list(zip(numbers.tolist(), frame["a"].tolist(), strict=True))
    assert all(str(row) == a for row, a in seen)
    assert [e.row for e in err.value.errors] == [i for i in range(2, 400) if i % 7 == 0]


def test_invalid_utf8_names_the_line(tmp_path):
    path = write(tmp_path, b"a,b\n1,2\n3,\xff\xfe\n")
    with pytest.raises(csvio.FileRejected) as err:
        read_all(path)
    assert err.value.errors[-1].row == 3
    assert "UTF-8" in err.value.errors[-1].reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-05-01", datetime(2020, 5, 1)),
        ("2020-05-01T14:30", datetime(2020, 5, 1, 14, 30)),
        ("2020-05-01 14:30:15", datetime(2020, 5, 1, 14, 30, 15)),
        ("2020-05-01T14:30:15Z", datetime(2020, 5, 1, 14, 30, 15)),
        ("2020-05-01T14:30:15.25+02:00", datetime(2020, 5, 1, 12, 30, 15, 250000)),
        ("2020-05-01T14:30:15-0700", datetime(2020, 5, 1, 21, 30, 15)),
        ("2020-05-01T00:30:00+01:00", datetime(2020, 4, 30, 23, 30)),
    ],
)
def test_parse_timestamps_to_naive_utc(text, expected):
    out, bad = csvio.parse_timestamps(pd.Series([text], dtype="str"))
    assert not bad[0]
    assert pd.Timestamp(out[0]).to_pydatetime() == expected


@pytest.mark.parametrize(
    "text", ["2020-02-30", "2020", "2020-05", "yesterday", "2020-05-01T25:00", "05/01/2020", ""]
)
def test_parse_timestamps_flags_what_is_not_a_date(text):
    out, bad = csvio.parse_timestamps(pd.Series([text, "2020-05-01"], dtype="str"))
    assert bad.tolist() == [True, False]
    assert np.isnat(out[0])


def test_parse_timestamps_accepts_typed_columns():
    aware = pd.Series(pd.to_datetime(["2020-05-01T12:00:00+02:00"], utc=True))
    out, bad = csvio.parse_timestamps(aware)
    assert pd.Timestamp(out[0]).to_pydatetime() == datetime(2020, 5, 1, 10)
    assert not bad.any()


def test_formatted_timestamps_are_what_sqlalchemy_stores_on_sqlite():
    bind = DateTime().dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())
    values = [
        datetime(2020, 5, 1),
        datetime(2020, 5, 1, 9, 5, 7, 5),
        datetime(1999, 12, 31, 23, 59, 59, 999999),
    ]
    assert csvio.format_timestamps(np.array(values, dtype="datetime64[us]")) == [bind(v) for v in values]
