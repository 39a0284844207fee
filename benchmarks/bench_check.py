"""The fast lane's time: `make check` (lint, format, types, import contracts, the fast tests)
run in this checkout, its installs already done.

    python -m benchmarks.bench_check [--repeat 3] [--json OUT]

Each run is timed whole (wall clock, from `make` starting to its exit); the median is
reported with the number of tests it ran. The check: the median is under 60 s."""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 60.0
PASSED = re.compile(r"(\d+) passed")


def once() -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(["make", "check"], cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"make check failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    found = PASSED.findall(done.stdout)
    return seconds, int(found[-1]) if found else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    runs = []
    for n in range(args.repeat):
        seconds, tests = once()
        runs.append({"seconds": seconds, "tests": tests, "load": os.getloadavg()[0]})
        print(f"make check {n + 1}: {seconds:.1f} s, {tests} tests", flush=True)
    median = statistics.median(r["seconds"] for r in runs)
    report = {
        "machine": {"cpu": cpu_model(), "cpus": len(os.sched_getaffinity(0))},
        "runs": runs,
        "median_s": median,
        "tests": runs[-1]["tests"],
        "ok": median <= LIMIT_S,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(f"median {median:.1f} s: " + ("OK" if report["ok"] else f"FAIL: over {LIMIT_S:.0f} s"))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
