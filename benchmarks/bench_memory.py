"""Peak memory of long runs: `selfinstruct run` on the fake backend at growing sizes.

    python -m benchmarks.bench_memory [--sizes 2500 5000 10000] [--limit-mb 1024]

Each size is a fresh run in a temporary directory, started as a child process; its peak
resident set size (ru_maxrss from wait4) and wall time are reported, with the peak's growth
per 1,000 instructions. The check: the largest run stays under --limit-mb, and memory grows
at most linearly (the peak per instruction does not rise with the run's size).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import cpu_model, package_versions


def measure(size: int, workdir: Path) -> dict:
    out = workdir / f"run{size}"
    errors = workdir / f"run{size}.stderr"
    started = time.perf_counter()
    with errors.open("wb") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "selfinstruct",
                "run",
                "--backend",
                "fake",
                "--num-instructions",
                str(size),
                "--out",
                str(out),
                "-q",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"run of {size} failed: {errors.read_text()}")
    store_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    return {
        "instructions": size,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "seconds": seconds,
        "run_dir_mb": store_mb,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2500, 5000, 10000])
    parser.add_argument("--limit-mb", type=float, default=1024)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sorted(args.sizes):
            row = measure(size, Path(tmp))
            rows.append(row)
            print(
                f"{size:>7,} instructions: peak RSS {row['peak_rss_mb']:7.1f} MB, "
                f"{row['seconds']:6.1f} s, run directory {row['run_dir_mb']:.1f} MB",
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
    ok = last["peak_rss_mb"] <= args.limit_mb and per_instruction[-1] <= per_instruction[0]
    report = {
        "machine": {
            "cpu": cpu_model(),
            "cpus": len(os.sched_getaffinity(0)),
            "python": sys.version.split()[0],
        },
        "versions": package_versions(("selfinstruct", "rapidfuzz", "numpy")),
        "rows": rows,
        "growth_mb_per_1000": growth,
        "ok": ok,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print("OK" if ok else f"FAIL: peak above {args.limit_mb} MB or growing faster than linear")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
