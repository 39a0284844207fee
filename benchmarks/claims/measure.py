"""Measure one benchmark: run its commands (each in a child process, writing its JSON report),
read its figures from the reports, and note when, where and under what load it ran."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.claims.source import Source
from benchmarks.machine import cpu_model, package_versions

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("selfinstruct", "rapidfuzz", "numpy", "aiohttp", "spacy", "llama-cpp-python")


@dataclass
class Measured:
    source: Source
    mode: str
    entry: dict[str, Any]  # what the results file keeps for this mode

    @property
    def figures(self) -> dict[str, float]:
        return {key: item["value"] for key, item in self.entry["figures"].items()}


def measure(source: Source, mode: str, *, echo: bool = True) -> Measured:
    """Run the benchmark's commands for `mode` and read its figures."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    reports = []
    with tempfile.TemporaryDirectory(prefix=f"claims-{source.name}-") as tmp:
        for n, command in enumerate(source.commands(mode)):
            out = Path(tmp) / f"report{n}.json"
            argv = [sys.executable, "-m", *command, "--json", str(out)]
            if echo:
                print(f"[{source.name}] python -m {' '.join(command)}", file=sys.stderr)
            done = subprocess.run(argv, cwd=ROOT, stdout=sys.stderr if echo else subprocess.DEVNULL)
            if not out.exists():
                raise SystemExit(
                    f"{source.name}: `python -m {' '.join(command)}` wrote no report "
                    f"(exit {done.returncode})"
                )
            reports.append(json.loads(out.read_text(encoding="utf-8")))
    values = source.extract(mode, reports)
    entry = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": machine(),
        "conditions": source.conditions(mode),
        "commands": [" ".join(["python -m", *command]) for command in source.commands(mode)],
        "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "seconds": round(time.perf_counter() - started, 1),
        "figures": {
            spec.key: {
                "value": round(float(values[spec.key]), 6),
                "unit": spec.unit,
                "what": spec.what,
                "tolerance": spec.tolerance,
                **({"limit": list(spec.limit)} if spec.limit else {}),
            }
            for spec in source.specs_for(mode)
            if spec.key in values
        },
    }
    return Measured(source, mode, entry)


def machine() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cpus": len(os.sched_getaffinity(0)),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "packages": package_versions(PACKAGES),
    }


def _commit() -> str:
    """The checkout's commit, with "+changes" when it has uncommitted ones."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "src", "benchmarks")
    return head + ("+changes" if dirty else "")
