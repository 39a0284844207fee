"""A whole `selfinstruct run` against a local server that answers like a GPU engine: how busy
the client kept the slots, stage by stage and over the whole command (issue 24).

The mock server (`python -m selfinstruct.testing.openai_server`, in its own process, a fresh
one per run) answers each request after ttft + per_token * n seconds, n drawn per task from a
length distribution (testing/latency.py), and keeps a timeline of every request: when it was
admitted, when its answer was ready, its task, its service seconds (GET /timeline). The
command is one `selfinstruct run --backend openai --concurrency C`, default settings beyond
that, into a fresh directory. From the timeline, per stage (testing/timeline.py):

    busy span = its first request's start to its last answer
    fraction  = service seconds of ALL requests in flight during the span, clipped to it,
                / (C * span): how busy all the slots were while the stage was working
    own       = the same for the stage's own requests only

and for the whole command:

    wall fraction = total service seconds / C / wall (start to exit: start-up, prepare and
                    the report included)
    idle          = time with no request in flight: before the first, after the last answer
                    (prepare, card, report), and gaps in between

Series (`--series`, each a server profile): **heavy** (issue 24's engine: 0.2 s to the first
token, 5 ms per token, lognormal lengths with sigma 1.0, p99/p50 = 10) and **fixed** (the same
medians, sigma 0: no tail), each at every `--sizes` (default 1000 and 3000 instructions).

`--capacity K --concurrency auto`: the server answers 429 above K requests in progress and the
client adapts; the fractions are then of the server's capacity (slots = K).

Targets (`--no-check` reports them without failing): the whole run's wall fraction >= 0.85 at
3,000 instructions and more, >= 0.8 below (issue 24 names 600); every stage >= 0.85 in its
busy span (of the capacity with --concurrency auto). They apply to every series run.

`--per-stage` keeps the earlier measurement: the stages as separate commands (bootstrap,
classify, instances, prepare), each stage's fraction = its service / C / its recorded time,
with the default schedule (bootstrap.batches_in_flight = 2C/5) and the paper's (k = 1).

    python -m benchmarks.bench_run_throughput [--sizes 1000,3000] [--concurrency 64]
        [--series heavy,fixed] [--capacity K] [--src CHECKOUT] [--set KEY=VALUE ...]
        [--json OUT] [--with-timeline] [--no-check]
    python -m benchmarks.bench_run_throughput --capacity 24 --concurrency auto
    python -m benchmarks.bench_run_throughput --per-stage [--schedules default,paper]

`--src CHECKOUT` runs the command from another source tree (its src/ first on PYTHONPATH, e.g.
a `git worktree` of an earlier commit) while the server runs from this one: before/after
figures against the same server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
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
from benchmarks.machine import package_versions, system_busy_seconds
from selfinstruct.testing.latency import PROFILES, LatencyModel, TimelineRow
from selfinstruct.testing.timeline import Span, busy_fraction, idle_time, rows_of, stage_spans

TARGET = 0.85  # every stage, in its busy span
# The whole run's wall fraction: the first threshold whose size the run reaches.
WALL_TARGETS = ((3000, 0.85), (0, 0.80))
SERIES = ("heavy", "fixed")
STAGES = ("bootstrap", "classify", "instances", "prepare")
# --per-stage: "default": bootstrap.batches_in_flight k for the concurrency (--batches-in-
# flight, by default the README's rule: about twice the slots in batches, 2 * C /
# request_batch_size); "paper": k = 1, the paper's schedule.
SCHEDULES = {"default": (), "paper": ("bootstrap.batches_in_flight=paper",)}
BATCH = 5  # bootstrap.request_batch_size
AUTO = "auto"


def batches_for(concurrency: int) -> int:
    """k that keeps `concurrency` slots busy: twice as many requests as slots."""
    return max(1, -(-2 * concurrency // BATCH))


SELFINSTRUCT = (sys.executable, "-m", "selfinstruct")
STAGE_TIMEOUT = 6 * 3600
REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------
# The server in its own process


@dataclass
class Server:
    """A running mock server: where it is, its process, its counters over HTTP."""

    base_url: str
    pid: int
    final_stats: dict[str, Any] | None = None

    def _get(self, path: str) -> dict[str, Any]:
        url = self.base_url.removesuffix("/v1") + path
        return dict(httpx.get(url, timeout=120).json())

    def stats(self) -> dict[str, Any]:
        """The server's counters now (GET /stats): `service` holds the service time."""
        return self._get("/stats")

    def timeline(self) -> tuple[list[TimelineRow], dict[str, str]]:
        """Every request that held a slot (GET /timeline), and the stage of each task."""
        body = self._get("/timeline")
        return rows_of(body["rows"]), dict(body["stages"])

    def cpu_seconds(self) -> float | None:
        return _process_cpu_seconds(self.pid)


def server_arguments(args: argparse.Namespace, profile: str | None = None) -> list[str]:
    """The server's flags: the profile, the latency flags given over it, the capacity."""
    flags = ["--profile", profile] if profile else []
    if args.ttft is not None:
        flags += ["--ttft", str(args.ttft)]
    if args.per_token is not None:
        flags += ["--per-token", str(args.per_token)]
    if args.lengths:
        flags += ["--lengths", args.lengths]
    if getattr(args, "capacity", None):
        flags += ["--capacity", str(args.capacity), "--retry-after", str(args.retry_after)]
    return flags or ["--latency-model"]


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
    """How to call `selfinstruct` against the server. `style`: the prompt style to ask for
    (None: the run's default); `env`: the command's environment (None: ours)."""

    base_url: str
    concurrency: str
    instructions: int
    sets: tuple[str, ...] = ()
    style: str | None = "completion"
    env: Mapping[str, str] | None = field(default=None, repr=False)

    def argv(self, stage: str, out: Path) -> list[str]:
        argv = [*SELFINSTRUCT, stage, "--out", str(out)]
        if stage in ("run", "bootstrap"):  # they choose the run's backend; the rest use it
            argv += ["--backend", "openai", "--model", "fake"]
            argv += ["--num-instructions", str(self.instructions)]
            if self.style:
                argv += ["--prompt-style", self.style]
        if stage != "prepare":  # prepare sends no request
            argv += ["--base-url", self.base_url, "--concurrency", self.concurrency]
        for value in self.sets:
            argv += ["--set", value]
        return [*argv, "--quiet"]


def run_command(
    argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None
) -> tuple[int, float, str]:
    """Exit code, wall seconds and the tail of the output of one command."""
    start = time.perf_counter()
    with log.open("a", encoding="utf-8") as out:
        out.write("$ " + " ".join(argv) + "\n")
        out.flush()
        done = subprocess.run(
            argv, stdout=out, stderr=subprocess.STDOUT, timeout=STAGE_TIMEOUT, env=env
        )
    seconds = time.perf_counter() - start
    tail = "\n".join(log.read_text(encoding="utf-8").splitlines()[-15:])
    return done.returncode, seconds, tail


def startup_seconds(env: Mapping[str, str] | None = None) -> float:
    """How long the command line takes to start and exit doing nothing."""
    start = time.perf_counter()
    argv = [*SELFINSTRUCT, "bootstrap", "--help"]
    subprocess.run(argv, capture_output=True, check=False, env=env)
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


# ---------------------------------------------------------------------------------------------
# The whole run as one command (the main series)


@dataclass(frozen=True)
class Conditions:
    """What one whole run is measured under."""

    series: str
    instructions: int
    concurrency: str
    slots: int  # C, or the server's capacity with --concurrency auto
    sets: tuple[str, ...]


def stage_figures(
    rows: Sequence[TimelineRow], stage_of: Mapping[str, str], slots: int
) -> dict[str, dict[str, Any]]:
    """Per stage, in the order they started: busy span, requests, own service seconds, the
    share of all slots in service during the span (`fraction`) and of the stage's own
    requests (`own`)."""
    spans = stage_spans(rows, stage_of)
    figures = {}
    for stage, span in sorted(spans.items(), key=lambda item: item[1].start):
        own = [row for row in rows if stage_of.get(row.task, row.task) == stage]
        service = sum(row.service_seconds for row in own)
        figures[stage] = {
            "span_start": span.start,
            "span_end": span.end,
            "span_seconds": span.seconds,
            "requests": len(own),
            "cancelled": sum(1 for row in own if row.outcome != "ok"),
            "service_seconds": service,
            "tasks": sorted({row.task for row in own}),
            "fraction": busy_fraction(rows, span, slots),
            "own": busy_fraction(own, span, slots),
        }
    return figures


def whole_figures(rows: Sequence[TimelineRow], command: Span, slots: int) -> dict[str, Any]:
    """The whole command: its wall fraction, the generating span's, and where it was idle."""
    service = sum(row.service_seconds for row in rows)
    idle = idle_time(rows, command)
    generating = Span(min(r.started for r in rows), max(r.ended for r in rows)) if rows else None
    return {
        "wall_seconds": command.seconds,
        "requests": len(rows),
        "service_seconds": service,
        "ideal_seconds": service / slots,
        "fraction_wall": service / slots / command.seconds if command.seconds else None,
        "generating_seconds": generating.seconds if generating else 0.0,
        "fraction_generating": busy_fraction(rows, generating, slots) if generating else None,
        "idle_before_first": idle.before_first,
        "idle_after_last": idle.after_last,
        "idle_gaps": idle.gaps,
        "idle_seconds": idle.total,
    }


@dataclass
class CpuMeter:
    """CPU seconds of the command (a waited-for child), the server, this process and every
    other process on the machine between start() and stop(): noise shows up in `others`."""

    server: Server
    _start: dict[str, float | None] = field(default_factory=dict)

    def _now(self) -> dict[str, float | None]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "command": children.ru_utime + children.ru_stime,
            "server": self.server.cpu_seconds(),
            "benchmark": ours.ru_utime + ours.ru_stime,
            "system": system_busy_seconds(),
        }

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> dict[str, float | None]:
        end = self._now()
        used: dict[str, float | None] = {}
        for key, value in end.items():
            first = self._start.get(key)
            used[key] = None if value is None or first is None else value - first
        parts = [used[k] for k in ("command", "server", "benchmark")]
        system = used.pop("system")
        known = None if any(p is None for p in parts) else sum(p or 0.0 for p in parts)
        used["others"] = None if system is None or known is None else max(0.0, system - known)
        return used


def run_whole(
    server: Server, command: Command, conditions: Conditions, log: Path, keep: bool
) -> dict[str, Any]:
    """One `selfinstruct run` into a fresh directory, measured from the server's timeline."""
    meter = CpuMeter(server)
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        out = Path(tmp) / "run"
        meter.start()
        started_at = time.time()
        code, wall, tail = run_command(command.argv("run", out), log, command.env)
        cpu = meter.stop()
        recorded = {stage: stage_seconds(out, stage) for stage in STAGES}
        counts = run_counts(out)
    stats = settled(server)
    rows, stage_of = server.timeline()
    span = Span(started_at, started_at + wall)
    result: dict[str, Any] = {
        "series": conditions.series,
        "instructions": conditions.instructions,
        "concurrency": conditions.concurrency,
        "slots": conditions.slots,
        "exit_code": code,
        "counts": counts,
        "stages": stage_figures(rows, stage_of, conditions.slots),
        "whole": whole_figures(rows, span, conditions.slots),
        "recorded_stage_seconds": recorded,
        "answered_429": stats["service"]["answered_429"],
        "max_in_progress": stats["service"]["max_in_progress"],
        "cpu_seconds": cpu,
        "started_at": started_at,
    }
    if keep:
        result["timeline"] = [list(row) for row in rows]
    if code != 0:
        result["error"] = tail
    return result


def run_counts(out: Path) -> dict[str, Any]:
    """run.json's counts (instructions, instances, ...), or {} when it is missing."""
    try:
        return dict(json.loads((out / "run.json").read_text())["counts"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def command_env(src: Path | None) -> dict[str, str] | None:
    """The command's environment: ours, with `src`'s src/ first on PYTHONPATH if given."""
    if src is None:
        return None
    paths = [str(src / "src"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def run_series(args: argparse.Namespace, log: Path) -> list[dict[str, Any]]:
    """Every series at every size, each on a fresh server."""
    slots = args.capacity if args.concurrency == AUTO else int(args.concurrency)
    results = []
    for series in args.series:
        for size in args.sizes:
            conditions = Conditions(series, size, args.concurrency, slots, tuple(args.set))
            with server_process(server_arguments(args, series)) as server:
                model = server.stats()["service"]["latency_model"]
                command = Command(
                    server.base_url, args.concurrency, size, tuple(args.set), None, args.env
                )
                result = run_whole(server, command, conditions, log, args.with_timeline)
            result["latency_model"] = model
            result["server_stats"] = server.final_stats
            results.append(result)
            print(progress_line(result), file=sys.stderr, flush=True)
    return results


def progress_line(result: dict[str, Any]) -> str:
    whole = result["whole"]
    fraction = whole["fraction_wall"]
    return (
        f"{result['series']} {result['instructions']}: {whole['wall_seconds']:.1f} s, wall "
        f"fraction {fraction or 0:.3f}, exit {result['exit_code']}"
    )


# ---------------------------------------------------------------------------------------------
# The stages one by one (--per-stage: the earlier measurement)


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


def run_per_stage(args: argparse.Namespace, log: Path) -> dict[str, Any]:
    """Each series, size and schedule: the stages as separate commands on a fresh server."""
    schedules = {}
    concurrency = int(args.concurrency)
    for series in args.series:
        for size in args.sizes:
            for name in args.schedules:
                with server_process(server_arguments(args, series)) as server:
                    k = args.batches_in_flight or batches_for(concurrency)
                    ours = (f"bootstrap.batches_in_flight={k}",) if name == "default" else ()
                    sets = (*ours, *SCHEDULES[name], *args.set)
                    command = Command(server.base_url, args.concurrency, size, sets, env=args.env)
                    found = run_schedule(server, command, concurrency, log)
                    found["latency_model"] = server.stats()["service"]["latency_model"]
                found["server_stats"] = server.final_stats
                schedules[f"{series}/{size}/{name}"] = found
    return {"schedules": schedules, "startup_seconds": startup_seconds(args.env)}


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


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def stages_table(results: Sequence[dict[str, Any]]) -> str:
    header = ["series", "instr", "stage", "busy span s", "requests", "service s", "own"]
    header += ["fraction", "recorded s"]
    rows = []
    for r in results:
        for stage, f in r["stages"].items():
            rows.append(
                (
                    r["series"],
                    r["instructions"],
                    stage,
                    f["span_seconds"],
                    f["requests"],
                    f["service_seconds"],
                    _round(f["own"]),
                    _round(f["fraction"]),
                    _round(r["recorded_stage_seconds"].get(stage)),
                )
            )
    return format_table(header, rows, left=3)


def whole_table(results: Sequence[dict[str, Any]]) -> str:
    header = ["series", "instr", "wall s", "requests", "service s", "ideal s", "wall fraction"]
    header += ["generating s", "its fraction", "before 1st s", "after last s", "gaps s"]
    header += ["429s", "command CPU s", "server CPU s", "others CPU s", "exit"]
    rows = []
    for r in results:
        w, cpu = r["whole"], r["cpu_seconds"]
        rows.append(
            (
                r["series"],
                r["instructions"],
                w["wall_seconds"],
                w["requests"],
                w["service_seconds"],
                w["ideal_seconds"],
                _round(w["fraction_wall"]),
                w["generating_seconds"],
                _round(w["fraction_generating"]),
                w["idle_before_first"],
                w["idle_after_last"],
                w["idle_gaps"],
                r["answered_429"],
                cpu["command"],
                cpu["server"],
                cpu["others"],
                r["exit_code"],
            )
        )
    return format_table(header, rows, left=2)


def whole_report_text(report: dict[str, Any]) -> str:
    results = report["runs"]
    c = report["conditions"]
    slots = "of the server's capacity" if c["concurrency"] == AUTO else "of the C slots"
    lines = [
        f"`selfinstruct run --concurrency {c['concurrency']}`"
        + (f" against capacity {c['capacity']}" if c["capacity"] else "")
        + f"; fractions are {slots} ({results[0]['slots'] if results else '-'})",
        "",
        stages_table(results),
        "",
        "busy span: the stage's first request to its last answer; fraction: service of all "
        "requests in flight in the span / (slots * span); own: the stage's requests only; "
        "recorded s: the stage's time in the run's stage_runs",
        "",
        whole_table(results),
        "",
        "wall fraction: service / slots / wall (start to exit, report included); generating: "
        "first request to last answer; before 1st / after last / gaps: no request in flight",
    ]
    seen = set()
    for r in results:
        model = describe_model(r["latency_model"])
        if model not in seen:
            seen.add(model)
            lines.append(f"{r['series']}: {model}")
    for r in results:
        if r.get("error"):
            lines.append(f"{r['series']} {r['instructions']} failed (exit {r['exit_code']}):")
            lines.append(r["error"])
    return "\n".join(lines)


def per_stage_report_text(report: dict[str, Any]) -> str:
    header = ["run", "stage", "wall s", "stage s", "busy s", "200s", "429s", "service s"]
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
                    _round(r["fraction"]),
                    _round(r["fraction_wall"]),
                    round(r["tokens"] / r["stage_seconds"], 1) if r["stage_seconds"] else None,
                    r.get("exit_code", "ok" if r.get("ok") else "failed"),
                )
            )
    notes = [
        f"--concurrency {report['conditions']['concurrency']}; stages as separate commands",
        f"busy s: time with at least one request in progress at the server; command start-up "
        f"(bootstrap --help) {report['startup_seconds']:.2f} s is in every stage's wall time",
    ]
    for name, schedule in report["schedules"].items():
        notes.append(f"{name}: {describe_model(schedule['latency_model'])}")
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


# ---------------------------------------------------------------------------------------------
# Targets


def wall_target(instructions: int) -> float:
    return next(target for size, target in WALL_TARGETS if instructions >= size)


def whole_run_misses(results: Sequence[dict[str, Any]], target: float) -> list[str]:
    """Runs that failed, stages below `target` in their busy span, wall fractions below
    theirs (with --concurrency auto the wall fraction is not a target: the stages' share of
    the capacity is)."""
    found = []
    for r in results:
        name = f"{r['series']} {r['instructions']}"
        if r["exit_code"] != 0:
            found.append(f"{name}: the run failed (exit {r['exit_code']})")
            continue
        for stage, f in r["stages"].items():
            if f["fraction"] is not None and f["fraction"] < target:
                found.append(f"{name}: {stage} {f['fraction']:.3f} in its busy span")
        wall = r["whole"]["fraction_wall"]
        goal = wall_target(r["instructions"])
        if r["concurrency"] != AUTO and (wall is None or wall < goal):
            found.append(f"{name}: whole run {wall or 0:.3f} of wall (target {goal})")
    return found


def per_stage_misses(report: dict[str, Any], target: float) -> list[str]:
    """Stages of the default schedule below the target (or failed)."""
    found = []
    for name, schedule in report["schedules"].items():
        if not name.endswith("/default"):
            continue
        for stage, r in schedule["stages"].items():
            if r["exit_code"] != 0:
                found.append(f"{name}: {stage} failed (exit {r['exit_code']})")
            elif r["fraction"] is not None and r["fraction"] < target:
                found.append(f"{name}: {stage} reached {r['fraction']:.3f} of the ideal")
    return found


# ---------------------------------------------------------------------------------------------
# Command line


def git_commit(tree: Path) -> dict[str, Any]:
    """The commit a source tree is at, and whether its src/ has changes not committed."""

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(tree), *argv], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "tree": str(tree),
        "commit": git("rev-parse", "HEAD") or None,
        "src_changed": bool(git("status", "--porcelain", "--", "src")),
    }


def conditions(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "mode": "per-stage" if args.per_stage else "whole run",
        "label": args.label,
        "sizes": args.sizes,
        "concurrency": args.concurrency,
        "capacity": args.capacity,
        "retry_after": args.retry_after if args.capacity else None,
        "series": {name: PROFILES[name].describe() for name in args.series},
        "overrides": {"ttft": args.ttft, "per_token": args.per_token, "lengths": args.lengths},
        "sets": list(args.set),
        "schedules": args.schedules if args.per_stage else None,
        "targets": {
            "stage_fraction": args.target,
            "wall_fraction": [{"from_instructions": n, "target": t} for n, t in WALL_TARGETS],
        },
    }


def run(args: argparse.Namespace, log: Path) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "run_throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.bench_run_throughput", *sys.argv[1:]]),
        "benchmark_tree": git_commit(REPO),
        "command_tree": git_commit(args.src or REPO),
        "versions": package_versions(("selfinstruct", "aiohttp")),
        "conditions": conditions(args),
    }
    if args.per_stage:
        report.update(run_per_stage(args, log))
    else:
        report["runs"] = run_series(args, log)
    report["log"] = str(log)
    return report


def add_model_arguments(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    """The latency model's flags (also used by bench_auto_concurrency). `defaults`: give
    --ttft and --per-token the default profile's values (else: the series' profile's)."""
    model = LatencyModel() if defaults else None
    parser.add_argument(
        "--ttft",
        type=float,
        default=model and model.ttft,
        help="seconds to the first token" + ("" if model else " (default: the profile's)"),
    )
    parser.add_argument(
        "--per-token",
        type=float,
        default=model and model.per_token,
        help="seconds per token" + ("" if model else " (default: the profile's)"),
    )
    parser.add_argument(
        "--lengths",
        metavar="SPEC",
        help="the server's --lengths ([PRESET,]STAGE=MEDIAN:SIGMA,...)",
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


def _names(choices: Sequence[str], what: str) -> Any:
    def parse(value: str) -> list[str]:
        names = [part.strip() for part in value.split(",") if part.strip()]
        if not names or any(name not in choices for name in names):
            raise argparse.ArgumentTypeError(f"{what} are among {', '.join(choices)}")
        return names

    return parse


def _sizes(value: str) -> list[int]:
    try:
        found = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("comma-separated integers, e.g. 600,1000,3000") from None
    if not found or min(found) < 1:
        raise argparse.ArgumentTypeError("at least one size, each >= 1")
    return found


def _concurrency(value: str) -> str:
    if value == AUTO or (value.isdigit() and int(value) >= 1):
        return value
    raise argparse.ArgumentTypeError("an integer >= 1, or auto")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_run_throughput",
        description="How busy a whole `selfinstruct run` keeps the slots of a server that "
        "answers like a GPU engine, per stage and over the whole command.",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=[1000, 3000],
        help="--num-instructions of each run (default: 1000,3000)",
    )
    parser.add_argument("--instructions", type=_sizes, dest="sizes", help="same as --sizes")
    parser.add_argument(
        "--concurrency", type=_concurrency, default="64", help="N or auto (default: 64)"
    )
    parser.add_argument(
        "--series",
        type=_names(sorted(PROFILES), "series"),
        default=list(SERIES),
        help="server profiles, one series each (default: heavy,fixed)",
    )
    parser.add_argument(
        "--capacity", type=int, help="the server answers 429 above K requests in progress"
    )
    parser.add_argument(
        "--retry-after", type=float, default=1.0, help="the server's Retry-After (default: 1)"
    )
    parser.add_argument(
        "--src",
        type=Path,
        help="run the command from this checkout's src/ (the server runs from this one)",
    )
    parser.add_argument(
        "--label", default="", help="a note kept in the JSON, e.g. which code ran (--src)"
    )
    parser.add_argument(
        "--with-timeline", action="store_true", help="keep every request's row in the JSON"
    )
    parser.add_argument("--target", type=float, default=TARGET, help=f"(default: {TARGET})")
    parser.add_argument(
        "--per-stage", action="store_true", help="the stages as separate commands (earlier mode)"
    )
    parser.add_argument(
        "--schedules",
        type=_names(tuple(SCHEDULES), "schedules"),
        default=["default"],
        help="--per-stage: default (k = 2C/5), paper (k = 1); default: default",
    )
    parser.add_argument(
        "--batches-in-flight",
        type=int,
        default=0,
        help="--per-stage: k of the default schedule (default: 2 * concurrency / 5)",
    )
    add_model_arguments(parser, defaults=False)
    return parser


def write_json(report: dict[str, Any], path: Path | None) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")


def _checked(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Arguments that go together, and the command's environment (args.env)."""
    if args.concurrency == AUTO and not args.capacity:
        parser.error("--concurrency auto needs --capacity K (the fractions are of K)")
    if args.capacity is not None and args.capacity < 1:
        parser.error("--capacity must be >= 1")
    if args.per_stage and args.concurrency == AUTO:
        parser.error("--per-stage needs a number for --concurrency")
    if args.src is not None and not (args.src / "src" / "selfinstruct").is_dir():
        parser.error(f"--src {args.src}: no src/selfinstruct in it")
    args.env = command_env(args.src.resolve() if args.src else None)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = _checked(parser, parser.parse_args(argv))
    machine_info = machine()
    log = Path(tempfile.mkstemp(prefix="bench-run-", suffix=".log")[1])
    report = {**run(args, log), "machine": machine_info}
    if args.per_stage:
        print(per_stage_report_text(report))
        missed = per_stage_misses(report, args.target)
    else:
        print(whole_report_text(report))
        missed = whole_run_misses(report["runs"], args.target)
    report["missed"] = missed
    write_json(report, args.json)
    print(f"command output: {log}", flush=True)
    if missed:
        print("MISSED:", file=sys.stderr)
        for line in missed:
            print(f"  {line}", file=sys.stderr)
        return 0 if args.no_check else 1
    print(f"OK: every stage reached {args.target} in its busy span, every run its wall target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
