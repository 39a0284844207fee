"""Long runs: peak memory and time of a whole `selfinstruct run` on the fake backend, and
what `prepare` costs on it with and without the report.

    python -m benchmarks.bench_memory [--sizes 2500 5000 10000] [--limit-mb 1024]
        [--set KEY=VALUE ...] [--repeat 2] [--json OUT]

Each size is a fresh run in a temporary directory, started as a child process; its peak
resident set size (ru_maxrss from wait4: the largest of the command and the processes it
waited for, such as the parse helper) and wall time are reported, with the peak's growth per
1,000 instructions. Then, on that run, each `--repeat` times (the median is kept):

- `prepare` as the run left it: the dataset, the card and the report (whose verb-noun
  pairs the run kept, so it parses nothing);
- `prepare --set prepare.report=false`: the dataset and the card alone (the setting is
  then turned back on);
- `report`: the report alone.

The check: the largest run stays under --limit-mb, memory grows at most linearly (the peak
per instruction does not rise with the run's size), and `prepare` with its report takes at
most 1.5 times `prepare` without it.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.child import timed
from benchmarks.machine import cpu_model, package_versions

PREPARE_RATIO = 1.5  # prepare with its report, at most this times prepare without it


def selfinstruct(*args: str) -> list[str]:
    return [sys.executable, "-m", "selfinstruct", *args]


def measure(size: int, workdir: Path, settings: Sequence[str], repeat: int) -> dict:
    out = workdir / f"run{size}"
    errors = workdir / f"run{size}.stderr"
    sets = [arg for item in settings for arg in ("--set", item)]
    run = selfinstruct("run", "--backend", "fake", "--num-instructions", str(size))
    seconds, peak = timed([*run, "--out", str(out), "-q", *sets], errors)
    row = {
        "instructions": _count(out, "instructions"),
        "asked": size,
        "peak_rss_mb": peak,
        "seconds": seconds,
        "run_dir_mb": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20,
        "parsed": _count(out, "instruction_parses"),
    }
    steps = {
        "prepare": selfinstruct("prepare", "--out", str(out), "-q"),
        "prepare_no_report": selfinstruct(
            "prepare", "--out", str(out), "-q", "--set", "prepare.report=false"
        ),
        "report": selfinstruct("report", "--run", str(out)),
    }
    for name, command in steps.items():
        found = [timed(command, errors) for _ in range(repeat)]
        row[f"{name}_s"] = statistics.median(s for s, _ in found)
        row[f"{name}_peak_mb"] = max(p for _, p in found)
        if name == "prepare_no_report":  # the setting sticks to the run: turn it back on
            timed(
                selfinstruct("prepare", "--out", str(out), "-q", "--set", "prepare.report=true"),
                errors,
            )
    row["prepare_ratio"] = row["prepare_s"] / row["prepare_no_report_s"]
    row["parsed_after"] = _count(out, "instruction_parses")
    return row


def _count(out: Path, table: str) -> int:
    with sqlite3.connect(f"file:{out / 'selfinstruct.db'}?mode=ro", uri=True) as db:
        try:
            return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2500, 5000, 10000])
    parser.add_argument("--limit-mb", type=float, default=1024)
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="K=V")
    parser.add_argument("--repeat", type=int, default=2, help="prepare and report timings")
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for size in sorted(args.sizes):
            row = measure(size, workdir, args.settings, args.repeat)
            rows.append(row)
            print(
                f"{size:>7,} instructions: peak RSS {row['peak_rss_mb']:7.1f} MB, "
                f"{row['seconds']:6.1f} s, run directory {row['run_dir_mb']:.1f} MB; prepare "
                f"{row['prepare_s']:.2f} s ({row['prepare_peak_mb']:.0f} MB), without the "
                f"report {row['prepare_no_report_s']:.2f} s "
                f"({row['prepare_no_report_peak_mb']:.0f} MB): {row['prepare_ratio']:.2f}x; "
                f"report alone {row['report_s']:.2f} s ({row['report_peak_mb']:.0f} MB)",
                flush=True,
            )
    first, last = rows[0], rows[-1]
    growth = (
        (last["peak_rss_mb"] - first["peak_rss_mb"])
        / max(1, last["instructions"] - first["instructions"])
        * 1000
    )
    print(f"growth: {growth:.2f} MB per 1,000 instructions")
    per_instruction = [r["peak_rss_mb"] / r["instructions"] for r in rows]
    ok = (
        last["peak_rss_mb"] <= args.limit_mb
        and per_instruction[-1] <= per_instruction[0]
        and all(r["prepare_ratio"] <= PREPARE_RATIO for r in rows)
    )
    report = {
        "machine": {
            "cpu": cpu_model(),
            "cpus": len(os.sched_getaffinity(0)),
            "python": sys.version.split()[0],
        },
        "versions": package_versions(("selfinstruct", "rapidfuzz", "numpy", "spacy")),
        "settings": args.settings,
        "rows": rows,
        "growth_mb_per_1000": growth,
        "ok": ok,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print("OK" if ok else "FAIL: see the limits in the docstring")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
