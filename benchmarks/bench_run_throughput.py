"""A whole Self-Instruct run against a local server with a realistic latency model: how close
each stage comes to the ideal time.

The mock server (`python -m selfinstruct.testing.openai_server`, in its own process) answers
each request after ttft + per_token * n seconds, n drawn per stage from a heavy-tailed length
distribution (testing/latency.py), and adds up the service time it spent. The `selfinstruct`
command line runs the stages one by one (bootstrap, classify, instances, prepare) with
`--concurrency C`; before and after each stage the benchmark reads the server's counters
(GET /stats), so per stage:

    ideal    = service_seconds / C   (all C slots busy all the time)
    fraction = ideal / stage time    (1.0: the client never left a slot idle)

The stage time is the one the run records for the stage (from its start to its end, in the
process); "of wall" divides by the command's wall time instead, its start-up (about 0.6 s)
and the opening of the run included.

By default the run is done twice: with the default schedule and with the paper's
(`--set bootstrap.batches_in_flight=1`, one bootstrap batch at a time); `--set` values are
passed through to both. Each stage's wall time includes the command's start-up (shown once
as `startup`).

    python -m benchmarks.bench_run_throughput [--instructions 2000] [--concurrency 64]
        [--ttft 0.1] [--per-token 0.015] [--schedules default,paper] [--set KEY=VALUE ...]
        [--json OUT] [--no-check]

Exits 1 when a stage of the default schedule reaches less than `--target` (0.85) of the
ideal, unless --no-check.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench_openai_throughput import (
    SERVER_MAIN,
    _first_line,
    _interrupt,
    _process_cpu_seconds,
    _read,
    machine,
)
from benchmarks.machine import package_versions
from selfinstruct.testing.latency import LatencyModel

TARGET = 0.85
STAGES = ("bootstrap", "classify", "instances", "prepare")
# "default": bootstrap.batches_in_flight k for the concurrency (--batches-in-flight, by default
# the README's rule: about twice the slots in batches, 2 * C / request_batch_size); "paper":
# k = 1, the paper's schedule.
SCHEDULES = {"default": (), "paper": ("bootstrap.batches_in_flight=paper",)}
BATCH = 5  # bootstrap.request_batch_size


def batches_for(concurrency: int) -> int:
    """k that keeps `concurrency` slots busy: twice as many requests as slots."""
    return max(1, -(-2 * concurrency // BATCH))


SELFINSTRUCT = (sys.executable, "-m", "selfinstruct")
STAGE_TIMEOUT = 6 * 3600


# ---------------------------------------------------------------------------------------------
# The server in its own process


@dataclass
class Server:
    """A running mock server: where it is, its process, its counters over HTTP."""

    base_url: str
    pid: int
    final_stats: dict[str, Any] | None = None

    def stats(self) -> dict[str, Any]:
        """The server's counters now (GET /stats): `service` holds the service time."""
        url = self.base_url.removesuffix("/v1") + "/stats"
        return dict(httpx.get(url, timeout=30).json())

    def cpu_seconds(self) -> float | None:
        return _process_cpu_seconds(self.pid)


def server_arguments(args: argparse.Namespace) -> list[str]:
    """The server's flags for the latency model (and capacity) given to a benchmark."""
    flags = ["--ttft", str(args.ttft), "--per-token", str(args.per_token)]
    if args.lengths:
        flags += ["--lengths", args.lengths]
    if getattr(args, "capacity", None):
        flags += ["--capacity", str(args.capacity), "--retry-after", str(args.retry_after)]
    return flags


@contextlib.contextmanager
def server_process(flags: Sequence[str]) -> Iterator[Server]:
    """`python -m selfinstruct.testing.openai_server --port 0 FLAGS` in a child process,
    stopped with SIGINT (it prints its counters on the way out)."""
    command = [sys.executable, "-c", SERVER_MAIN, "--host", "127.0.0.1", "--port", "0", *flags]
    with (
        tempfile.TemporaryFile(mode="w+") as stderr,  # a file: a full pipe would block it
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True) as proc,
    ):
        try:
            url = _first_line(proc)
            if not url.startswith("http"):
                raise RuntimeError(f"the mock server did not start: {_read(stderr)[-2000:]}")
            server = Server(url, proc.pid)
            yield server
        finally:
            _interrupt(proc)
        for line in reversed(_read(stderr).splitlines()):
            with contextlib.suppress(ValueError):
                server.final_stats = json.loads(line)
                break


# ---------------------------------------------------------------------------------------------
# Running the command line and measuring it


@dataclass
class Command:
    """How to call `selfinstruct` against the server."""

    base_url: str
    concurrency: str
    instructions: int
    sets: tuple[str, ...] = ()

    def argv(self, stage: str, out: Path) -> list[str]:
        argv = [*SELFINSTRUCT, stage, "--out", str(out), "--backend", "openai", "--model"]
        argv += ["fake", "--base-url", self.base_url, "--concurrency", self.concurrency]
        argv += ["--num-instructions", str(self.instructions), "--prompt-style", "completion"]
        for value in self.sets:
            argv += ["--set", value]
        return [*argv, "--quiet"]


def run_command(argv: Sequence[str], log: Path) -> tuple[int, float, str]:
    """Exit code, wall seconds and the tail of the output of one command."""
    start = time.perf_counter()
    with log.open("a", encoding="utf-8") as out:
        out.write("$ " + " ".join(argv) + "\n")
        out.flush()
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=STAGE_TIMEOUT)
    seconds = time.perf_counter() - start
    tail = "\n".join(log.read_text(encoding="utf-8").splitlines()[-15:])
    return done.returncode, seconds, tail


def startup_seconds() -> float:
    """How long the command line takes to start and exit doing nothing."""
    start = time.perf_counter()
    subprocess.run([*SELFINSTRUCT, "bootstrap", "--help"], capture_output=True, check=False)
    return time.perf_counter() - start


def service_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the server did between two GET /stats answers."""
    b, a = before["service"], after["service"]
    stages = {}
    for name, totals in a["stages"].items():
        old = b["stages"].get(name, {})
        delta = {k: v - old.get(k, 0) for k, v in totals.items()}
        if delta["requests"]:
            delta["service_seconds"] = round(delta["service_seconds"], 6)
            stages[name] = delta
    return {
        "answered_200": a["answered_200"] - b["answered_200"],
        "answered_429": a["answered_429"] - b["answered_429"],
        "over_capacity": a["over_capacity"] - b["over_capacity"],
        "service_seconds": round(a["service_seconds"] - b["service_seconds"], 6),
        "busy_seconds": round(a["busy_seconds"] - b["busy_seconds"], 6),
        "tokens": a["tokens"] - b["tokens"],
        "by_task": stages,
    }


def to_last_answer(stats: dict[str, Any], started_at: float) -> float | None:
    """Seconds from `started_at` (Unix time) to the last answer the server gave since."""
    last = stats["service"].get("last_finished_at")
    return last - started_at if last is not None and last > started_at else None


def settled(server: Server, limit: float = 10.0) -> dict[str, Any]:
    """The server's counters once no request is in progress: requests a stage cancelled (at
    bootstrap's target) end within the server's check interval and count as its own."""
    deadline = time.monotonic() + limit
    stats = server.stats()
    while stats["service"]["in_progress"] and time.monotonic() < deadline:
        time.sleep(0.05)
        stats = server.stats()
    return stats


def stage_seconds(out: Path, stage: str) -> float | None:
    """The stage's own time, as the run recorded it (from the stage's start to its end, in
    the process: without the command's start-up and the opening of the run)."""
    with contextlib.suppress(sqlite3.Error), sqlite3.connect(out / "selfinstruct.db") as db:
        row = db.execute(
            "SELECT seconds FROM stage_runs WHERE stage = ? ORDER BY id DESC LIMIT 1", (stage,)
        ).fetchone()
        return float(row[0]) if row else None
    return None


def measure(
    server: Server,
    argv: Sequence[str],
    log: Path,
    slots: int,
    out: Path | None = None,
    stage: str = "",
) -> dict[str, Any]:
    """Run one command; its wall time, its stage's own time, exit code and the server's
    work meanwhile. `fraction` is over the stage's own time, `fraction_wall` over the
    command's wall time (start-up included)."""
    before, cpu = server.stats(), server.cpu_seconds()
    started_at = time.time()
    code, seconds, tail = run_command(argv, log)
    after, cpu_after = settled(server), server.cpu_seconds()
    row: dict[str, Any] = {"exit_code": code, "wall_seconds": seconds}
    row["stage_seconds"] = (stage_seconds(out, stage) if out and stage else None) or seconds
    row["wall_to_last_answer"] = to_last_answer(after, started_at)
    row.update(service_delta(before, after))
    row["server_cpu_seconds"] = None if cpu is None or cpu_after is None else cpu_after - cpu
    row["ideal_seconds"] = row["service_seconds"] / slots
    answered = row["answered_200"]
    row["fraction"] = row["ideal_seconds"] / row["stage_seconds"] if answered else None
    row["fraction_wall"] = row["ideal_seconds"] / seconds if answered else None
    row["tokens_per_second"] = row["tokens"] / row["stage_seconds"]
    if code != 0:
        row["error"] = tail
    return row


def run_schedule(server: Server, command: Command, slots: int, log: Path) -> dict[str, Any]:
    """The stages one by one into a fresh run directory; stops at the first that fails."""
    stages: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        out = Path(tmp) / "run"
        for stage in STAGES:
            stages[stage] = measure(server, command.argv(stage, out), log, slots, out, stage)
            if stages[stage]["exit_code"] != 0:
                break
    return {
        "sets": list(command.sets),
        "stages": stages,
        "whole": whole(stages.values()),
        "max_in_progress": server.stats()["service"]["max_in_progress"],
    }


def whole(rows: Any) -> dict[str, Any]:
    """The whole run: every stage's times added up (`fraction` over the stages' own time,
    prepare's included; `fraction_wall` over the commands' wall time)."""
    rows = list(rows)
    wall = sum(r["wall_seconds"] for r in rows)
    own = sum(r["stage_seconds"] for r in rows)
    service = sum(r["service_seconds"] for r in rows)
    ideal = sum(r["ideal_seconds"] for r in rows)
    return {
        "wall_seconds": wall,
        "stage_seconds": own,
        "fraction_wall": ideal / wall if wall else None,
        "answered_200": sum(r["answered_200"] for r in rows),
        "answered_429": sum(r["answered_429"] for r in rows),
        "service_seconds": service,
        "busy_seconds": sum(r["busy_seconds"] for r in rows),
        "tokens": sum(r["tokens"] for r in rows),
        "ideal_seconds": ideal,
        "fraction": ideal / own if own else None,
        "ok": all(r["exit_code"] == 0 for r in rows) and len(rows) == len(STAGES),
    }


# ---------------------------------------------------------------------------------------------
# Reporting


def _cell(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _align(row: Sequence[str], widths: Sequence[int], left: int) -> list[str]:
    """The first `left` columns (names) to the left, the numbers to the right."""
    pairs = zip(row, widths, strict=True)
    return [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(pairs)]


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 2) -> str:
    cells = [list(header), *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(_align(row, widths, left)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def table(report: dict[str, Any]) -> str:
    header = ["schedule", "stage", "wall s", "stage s", "busy s", "200s", "429s", "service s"]
    header += ["ideal s", "fraction", "of wall", "tokens/s", "exit"]
    rows = []
    for name, schedule in report["schedules"].items():
        items = [*schedule["stages"].items(), ("whole run", schedule["whole"])]
        for stage, r in items:
            rows.append(
                (
                    name,
                    stage,
                    r["wall_seconds"],
                    r["stage_seconds"],
                    r["busy_seconds"],
                    r["answered_200"],
                    r["answered_429"],
                    r["service_seconds"],
                    r["ideal_seconds"],
                    None if r["fraction"] is None else round(r["fraction"], 3),
                    None if r["fraction_wall"] is None else round(r["fraction_wall"], 3),
                    round(r["tokens"] / r["stage_seconds"], 1) if r["stage_seconds"] else None,
                    r.get("exit_code", "ok" if r.get("ok") else "failed"),
                )
            )
    p = report["parameters"]
    notes = [
        f"{p['instructions']} instructions, --concurrency {p['concurrency']}; "
        + describe_model(report["latency_model"]),
        f"busy s: time with at least one request in progress at the server; command start-up "
        f"(bootstrap --help) {report['startup_seconds']:.2f} s is in every stage's wall time",
    ]
    for name, schedule in report["schedules"].items():
        for stage, r in schedule["stages"].items():
            if r.get("error"):
                notes.append(f"{name}/{stage} failed (exit {r['exit_code']}):\n{r['error']}")
    return format_table(header, rows) + "\n\n" + "\n".join(notes)


def describe_model(model: dict[str, Any] | None) -> str:
    if model is None:
        return "no latency model"
    lengths = ", ".join(f"{stage} {spec}" for stage, spec in model["lengths"].items())
    return (
        f"ttft {model['ttft']} s + {model['per_token']} s/token, lengths (median:sigma) {lengths}"
    )


def failures(report: dict[str, Any], target: float) -> list[str]:
    """Stages of the default schedule below the target (or failed)."""
    default = report["schedules"].get("default")
    if default is None:
        return ["the default schedule was not run"]
    found = []
    for stage, r in default["stages"].items():
        if r["exit_code"] != 0:
            found.append(f"{stage} failed (exit {r['exit_code']})")
        elif r["fraction"] is not None and r["fraction"] < target:
            found.append(f"{stage} reached {r['fraction']:.3f} of the ideal")
    return found


# ---------------------------------------------------------------------------------------------
# Command line


def run(args: argparse.Namespace, log: Path) -> dict[str, Any]:
    schedules, model = {}, None
    for name in args.schedules:  # a fresh server each: its counters are the schedule's
        with server_process(server_arguments(args)) as server:
            model = server.stats()["service"]["latency_model"]
            k = args.batches_in_flight or batches_for(args.concurrency)
            ours = (f"bootstrap.batches_in_flight={k}",) if name == "default" else ()
            sets = (*ours, *SCHEDULES[name], *args.set)
            command = Command(server.base_url, str(args.concurrency), args.instructions, sets)
            schedules[name] = run_schedule(server, command, args.concurrency, log)
        schedules[name]["server_stats"] = server.final_stats
    return {
        "benchmark": "run_throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": package_versions(("selfinstruct", "aiohttp")),
        "command": " ".join(["python -m benchmarks.bench_run_throughput", *sys.argv[1:]]),
        "parameters": {
            "instructions": args.instructions,
            "concurrency": args.concurrency,
            "schedules": {name: list(SCHEDULES[name]) for name in args.schedules},
            "sets": list(args.set),
            "target": args.target,
        },
        "latency_model": model,
        "startup_seconds": startup_seconds(),
        "schedules": schedules,
        "log": str(log),
    }


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The latency model's flags (also used by bench_auto_concurrency)."""
    defaults = LatencyModel()
    parser.add_argument(
        "--ttft", type=float, default=defaults.ttft, help="seconds to the first token"
    )
    parser.add_argument(
        "--per-token", type=float, default=defaults.per_token, help="seconds per token"
    )
    parser.add_argument(
        "--lengths", metavar="SPEC", help="the server's --lengths (STAGE=MEDIAN:SIGMA,...)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="passed to every selfinstruct command (repeatable)",
    )
    parser.add_argument("--json", metavar="OUT", type=Path, help="also write the report here")
    parser.add_argument("--no-check", action="store_true", help="exit 0 even below the target")


def _schedules(value: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in SCHEDULES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"schedules are among {', '.join(SCHEDULES)}")
    return names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_run_throughput",
        description="Per-stage wall time of a whole run against a latency-model server, "
        "next to the ideal service_seconds / concurrency.",
    )
    parser.add_argument("--instructions", type=int, default=2000, help="(default: 2000)")
    parser.add_argument("--concurrency", type=int, default=64, help="(default: 64)")
    parser.add_argument(
        "--schedules",
        type=_schedules,
        default=list(SCHEDULES),
        help="which runs: default (ours), paper (bootstrap.batches_in_flight=1); default: both",
    )
    parser.add_argument(
        "--batches-in-flight",
        type=int,
        default=0,
        help="k of the default schedule (default: 2 * concurrency / 5, rounded up)",
    )
    parser.add_argument("--target", type=float, default=TARGET, help=f"(default: {TARGET})")
    add_model_arguments(parser)
    return parser


def write_json(report: dict[str, Any], path: Path | None) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if min(args.instructions, args.concurrency) < 1:
        parser.error("--instructions and --concurrency must be >= 1")
    machine_info = machine()
    log = Path(tempfile.mkstemp(prefix="bench-run-", suffix=".log")[1])
    report = {**run(args, log), "machine": machine_info}
    print(table(report))
    write_json(report, args.json)
    print(f"command output: {log}", flush=True)
    missed = failures(report, args.target)
    if missed:
        print(f"FAIL (target {args.target}): " + "; ".join(missed), file=sys.stderr)
        return 0 if args.no_check else 1
    print(f"OK: every stage of the default schedule reached {args.target} of the ideal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
