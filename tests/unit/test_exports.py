"""CSV exports: formulas neutralised, RFC 4180 quoting, CRLF, UTF-8 with a BOM."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime

import pandas as pd
import pytest

from lockstep.exports import dataframe_to_csv, neutralise, rows_to_csv


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=Equals Labs", "'=Equals Labs"),
        ("+Plus Dental", "'+Plus Dental"),
        ("-Minus Records", "'-Minus Records"),
        ("@Home Care Services", "'@Home Care Services"),
        ("\tTabbed", "'\tTabbed"),
        ("\rReturned", "'\rReturned"),
        ("Plain = fine", "Plain = fine"),
        ("", ""),
        (None, ""),
        (-5, "-5"),  # a number is data, never a formula
        (2.5, "2.5"),
        (float("nan"), ""),
        (date(2020, 5, 30), "2020-05-30"),
        (datetime(2020, 5, 30, 9, 5, 7, 123), "2020-05-30 09:05:07"),
    ],
)
def test_neutralise(value, expected):
    assert neutralise(value) == expected


def test_csv_bytes_have_bom_crlf_and_minimal_quoting():
    data = rows_to_csv(
        ["name", "note", "n"],
        [
            ['The "Quoted" Agency', "Comma, Semicolon; & Co.", 3],
            ['=HYPERLINK("http://evil","x")', "line one\nline two", -1],
            ["Zoë's Café", "plain", 0],
        ],
    )
    assert data.startswith("\ufeff".encode())
    text = data.decode("utf-8")
    assert text == (
        "\ufeffname,note,n\r\n"
        '"The ""Quoted"" Agency","Comma, Semicolon; & Co.",3\r\n'
        '"\'=HYPERLINK(""http://evil"",""x"")","line one\nline two",-1\r\n'
        "Zoë's Café,plain,0\r\n"
    )
    # And a CSV reader gets the cells back, the formula defused.
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    assert rows[2] == ['\'=HYPERLINK("http://evil","x")', "line one\nline two", "-1"]


def test_dataframe_export_keeps_columns_and_numbers():
    df = pd.DataFrame({"tenant": ["-Minus Records", "Acme"], "tenants": [12, 3], "when": [None, pd.NaT]})
    text = dataframe_to_csv(df).decode("utf-8-sig")
    assert text.split("\r\n") == ["tenant,tenants,when", "'-Minus Records,12,", "Acme,3,", ""]
