"""XLSX readers for imports: openpyxl against python-calamine on a 200,000-row events sheet.

    .venv/bin/python -m benchmarks.xlsx_read [--rows 200000] [--runs 3]

Writes a deterministic events workbook once (benchmarks/out/events-<rows>.xlsx, gitignored, through
openpyxl's write-only mode: text ids and stages, real date cells, an empty note column),
then times each reader turning the first sheet into the list of rows the importer needs,
median of --runs runs in fresh subprocesses, with each run's peak RSS. Neither reader is
asked to do more than the importer asks of it: openpyxl in read-only mode with
values_only=True, calamine's `to_python()`. The end-to-end import of the same file
(`import events FILE.xlsx` into an empty database needs tenants) is not part of this.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "out"
STAGES = ("clients_upgraded", "gcm_enabled", "gcm_enforced")


def build(rows: int) -> Path:
    """The workbook with `rows` events (written once, then reused)."""
    path = DATA / f"events-{rows}.xlsx"
    if path.exists():
        return path
    from openpyxl import Workbook

    DATA.mkdir(parents=True, exist_ok=True)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("events")
    ws.append(["tenant_id", "track", "stage", "occurred_at", "source", "note"])
    start = datetime(2020, 4, 1, 9, 0)
    for i in range(rows):
        ws.append(
            [f"T{i // 3:07d}", "encryption", STAGES[i % 3], start + timedelta(minutes=i), "telemetry", None]
        )
    tmp = path.with_suffix(".tmp.xlsx")
    wb.save(tmp)
    tmp.rename(path)
    return path


def read_openpyxl(path: Path) -> int:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    wb.close()
    return len(rows)


def read_calamine(path: Path) -> int:
    from python_calamine import CalamineWorkbook

    wb = CalamineWorkbook.from_path(str(path))
    rows = wb.get_sheet_by_index(0).to_python(skip_empty_area=False)
    return len(rows)


READERS = {"openpyxl": read_openpyxl, "python-calamine": read_calamine}


def one_run(reader: str, path: Path) -> dict:
    """Time one read in this process; print seconds, rows and peak RSS as JSON."""
    t0 = time.perf_counter()
    n = READERS[reader](path)
    seconds = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "rows": n, "peak_mib": peak_mib}


def main() -> None:
    """Build the workbook, time both readers in subprocesses, print a Markdown table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--one", nargs=2, metavar=("READER", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one[0], Path(args.one[1]))))
        return
    t0 = time.perf_counter()
    path = build(args.rows)
    print(
        f"workbook {path.name}: {path.stat().st_size / 2**20:.1f} MiB "
        f"(ready in {time.perf_counter() - t0:.1f} s)"
    )
    print("| reader | rows | median s | runs (s) | peak RSS MiB |")
    print("|---|---:|---:|---|---:|")
    for reader in READERS:
        runs = []
        for _ in range(args.runs):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.xlsx_read", "--one", reader, str(path)],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            )
            runs.append(json.loads(out.stdout))
        secs = [r["seconds"] for r in runs]
        print(
            f"| {reader} | {runs[0]['rows'] - 1:,} | {statistics.median(secs):.2f} | "
            f"{', '.join(f'{s:.2f}' for s in secs)} | {max(r['peak_mib'] for r in runs):.0f} |"
        )


if __name__ == "__main__":
    main()
