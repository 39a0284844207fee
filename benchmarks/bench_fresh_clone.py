"""What a newcomer meets: `make test` in a fresh clone of this repository with a fresh virtual
environment (the README's test command), timed from `make` starting to its exit.

    python -m benchmarks.bench_fresh_clone [--json OUT]

The clone is of the checkout's current commit (uncommitted changes are not in it), in a
temporary directory, with the project's shared reference data (`../shared`) linked beside it
when the checkout has it. pip's cache is the machine's as it is: when it holds a built
llama-cpp-python wheel (any earlier install here), the engine's 5-8 minute build from source
is not part of the time. Reported: wall minutes, tests passed and skipped."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
COUNTS = re.compile(r"(\d+) (passed|skipped|failed|errors?)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fresh-clone-") as tmp:
        clone = Path(tmp) / "selfinstruct"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        shared = ROOT.parent / "shared"
        if shared.is_dir():
            (Path(tmp) / "shared").symlink_to(shared)
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        started = time.perf_counter()
        done = subprocess.run(
            ["make", "test"], cwd=clone, env=env, capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - started
    tail = done.stdout.splitlines()[-5:]
    counts = {kind.rstrip("s"): int(n) for n, kind in COUNTS.findall("\n".join(tail))}
    report = {
        "machine": {"cpu": cpu_model(), "cpus": len(os.sched_getaffinity(0))},
        "exit": done.returncode,
        "make_test_minutes": seconds / 60,
        "passed": counts.get("passed", 0),
        "skipped": counts.get("skipped", 0),
        "failed": counts.get("failed", 0) + counts.get("error", 0),
        "tail": tail + done.stderr.splitlines()[-5:],
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(f"make test in a fresh clone: {seconds / 60:.1f} min, exit {done.returncode}, {counts}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
