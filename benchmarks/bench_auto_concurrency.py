"""`--concurrency auto` against a server that takes at most K requests at once.

The mock server runs with the latency model and `--capacity K` (default 16): a request
arriving while K are in progress is answered 429 with Retry-After. The same workload, a whole
`selfinstruct run` of `--instructions` instructions into a fresh directory (on a fresh
server), runs once per fixed concurrency (default 4, 8, K, 2K, 64) and once with
`--concurrency auto`. For each: the time from the start of the run to the server's last
answer (`gen s`: the generating stages; prepare, which sends no request and takes the same
time at any setting, comes after), instructions per second over that time (the job is the
same: `--instructions` instructions), requests answered and generated tokens per second, the
share of 429 answers, and the fraction of the server's capacity used (service_seconds / K /
wall). auto should reach `--target` (0.9) of the best fixed setting's instructions per second
with less than `--max-429` (5%) of its requests answered 429.

Instructions per second rather than tokens per second is compared: a higher concurrency makes
bootstrap over-generate (more requests, more tokens, for the same instructions), which is a
cost, not throughput.

    python -m benchmarks.bench_auto_concurrency [--instructions 300] [--capacity 16]
        [--concurrencies 4,8,16,32,64] [--no-auto] [--set KEY=VALUE ...] [--json OUT]
        [--no-check]

Exits 1 when auto misses the target, or could not run, unless --no-check.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.bench_openai_throughput import machine
from benchmarks.bench_run_throughput import (
    Command,
    add_model_arguments,
    describe_model,
    format_table,
    measure,
    server_arguments,
    server_process,
    write_json,
)
from benchmarks.machine import package_versions

TARGET = 0.9
MAX_429 = 0.05
AUTO = "auto"


def run_setting(args: argparse.Namespace, concurrency: str, log: Path) -> dict[str, Any]:
    """One whole run with this --concurrency, on its own server."""
    with (
        server_process(server_arguments(args)) as server,
        tempfile.TemporaryDirectory(prefix="bench-auto-") as tmp,
    ):
        command = Command(server.base_url, concurrency, args.instructions, tuple(args.set))
        row = measure(server, command.argv("run", Path(tmp) / "run"), log, args.capacity)
        row["completed"] = completed(Path(tmp) / "run")
        service = server.stats()["service"]
        row["max_in_progress"] = service["max_in_progress"]
        row["latency_model"] = service["latency_model"]
    answered = row["answered_200"] + row["answered_429"]
    row["share_429"] = row["answered_429"] / answered if answered else None
    generating = row["wall_to_last_answer"] or row["wall_seconds"]
    # Instructions that came through with their instances: requests refused until their
    # attempts ran out leave instructions without them, which must not count.
    row["instructions_per_second"] = row["completed"] / generating
    row["requests_per_second"] = row["answered_200"] / generating
    row["tokens_per_second"] = row["tokens"] / generating
    row["capacity_used"] = row.pop("fraction")  # service_seconds / capacity / wall
    return row


def completed(out: Path) -> int:
    """Instructions of a run that have their instances (run.json's counts)."""
    try:
        return int(json.loads((out / "run.json").read_text())["counts"]["instances"])
    except (OSError, ValueError, KeyError):
        return 0


def compare(settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """auto next to the best fixed setting that completed (every instruction with its
    instances, exit 0)."""
    fixed = {
        k: r
        for k, r in settings.items()
        if k != AUTO and r["exit_code"] == 0 and r["completed"] == max_completed(settings)
    }
    best = max(fixed, key=lambda k: fixed[k]["instructions_per_second"], default=None)
    auto = settings.get(AUTO)
    ratio = None
    if best is not None and auto is not None and auto["exit_code"] == 0:
        ratio = auto["instructions_per_second"] / fixed[best]["instructions_per_second"]
    return {"best_fixed": best, "auto_to_best": ratio}


def max_completed(settings: dict[str, dict[str, Any]]) -> int:
    return max((r["completed"] for r in settings.values()), default=0)


def table(report: dict[str, Any]) -> str:
    header = ["concurrency", "wall s", "gen s", "done", "instr/s", "200s", "429s", "429 share"]
    header += ["req/s", "tokens/s", "capacity used", "max in progress", "exit"]
    rows = [
        (
            name,
            r["wall_seconds"],
            r["wall_to_last_answer"],
            r["completed"],
            round(r["instructions_per_second"], 2),
            r["answered_200"],
            r["answered_429"],
            None if r["share_429"] is None else round(r["share_429"], 3),
            round(r["requests_per_second"], 2),
            round(r["tokens_per_second"], 1),
            None if r["capacity_used"] is None else round(r["capacity_used"], 3),
            r["max_in_progress"],
            r["exit_code"],
        )
        for name, r in report["settings"].items()
    ]
    lines = [format_table(header, rows, left=1)]
    p, c = report["parameters"], report["comparison"]
    model = next(iter(report["settings"].values()))["latency_model"]
    lines += [
        "",
        f"`selfinstruct run` of {p['instructions']} instructions per setting; server capacity "
        f"{p['capacity']} (429 with Retry-After {p['retry_after']} s beyond); "
        + describe_model(model),
        "gen s: from the start to the server's last answer; instr/s, req/s and tokens/s over "
        "gen s; capacity used: service_seconds / capacity / wall",
        f"best fixed: {c['best_fixed']}; auto / best fixed instructions/s: "
        + ("-" if c["auto_to_best"] is None else f"{c['auto_to_best']:.3f}"),
    ]
    for name, r in report["settings"].items():
        if r.get("error"):
            lines.append(f"{name} failed (exit {r['exit_code']}):\n{r['error']}")
    return "\n".join(lines)


def verdict(report: dict[str, Any], target: float, max_429: float) -> str | None:
    """Why auto misses the target, or None."""
    auto = report["settings"].get(AUTO)
    if auto is None:
        return None
    if auto["exit_code"] != 0:
        return f"--concurrency auto failed (exit {auto['exit_code']})"
    ratio = report["comparison"]["auto_to_best"]
    problems = []
    if ratio is None or ratio < target:
        problems.append(f"auto reached {ratio or 0:.3f} of the best fixed setting (< {target})")
    if auto["share_429"] is not None and auto["share_429"] >= max_429:
        problems.append(f"{auto['share_429']:.1%} of auto's answers were 429 (>= {max_429:.0%})")
    return "; ".join(problems) or None


def run(args: argparse.Namespace, log: Path) -> dict[str, Any]:
    names = [str(c) for c in args.concurrencies] + ([AUTO] if args.auto else [])
    settings = {}
    for name in names:
        settings[name] = run_setting(args, name, log)
        print(f"{name}: {settings[name]['wall_seconds']:.1f} s", file=sys.stderr, flush=True)
    return {
        "benchmark": "auto_concurrency",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": package_versions(("selfinstruct", "aiohttp")),
        "command": " ".join(["python -m benchmarks.bench_auto_concurrency", *sys.argv[1:]]),
        "parameters": {
            "instructions": args.instructions,
            "capacity": args.capacity,
            "retry_after": args.retry_after,
            "concurrencies": names,
            "sets": list(args.set),
            "target": args.target,
            "max_429": args.max_429,
        },
        "settings": settings,
        "comparison": compare(settings),
        "log": str(log),
    }


def _concurrencies(value: str) -> list[int]:
    try:
        found = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("comma-separated integers, e.g. 4,8,16") from None
    if not found or min(found) < 1:
        raise argparse.ArgumentTypeError("at least one concurrency, each >= 1")
    return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_auto_concurrency",
        description="Throughput and 429 share of fixed concurrencies and --concurrency auto "
        "against a capacity-limited latency-model server.",
    )
    parser.add_argument("--instructions", type=int, default=300, help="per run (default: 300)")
    parser.add_argument("--capacity", type=int, default=16, help="the server's K (default: 16)")
    parser.add_argument(
        "--retry-after", type=float, default=1.0, help="the server's Retry-After (default: 1)"
    )
    parser.add_argument(
        "--concurrencies",
        type=_concurrencies,
        help="fixed settings to try (default: 4,8,K,2K,64)",
    )
    parser.add_argument("--no-auto", dest="auto", action="store_false", help="fixed ones only")
    parser.add_argument("--target", type=float, default=TARGET, help=f"(default: {TARGET})")
    parser.add_argument(
        "--max-429",
        type=float,
        default=MAX_429,
        help=f"largest acceptable share of 429 answers for auto (default: {MAX_429})",
    )
    add_model_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if min(args.instructions, args.capacity) < 1:
        parser.error("--instructions and --capacity must be >= 1")
    if args.concurrencies is None:
        args.concurrencies = sorted({4, 8, args.capacity, 2 * args.capacity, 64})
    machine_info = machine()
    log = Path(tempfile.mkstemp(prefix="bench-auto-", suffix=".log")[1])
    report = {**run(args, log), "machine": machine_info}
    print(table(report))
    write_json(report, args.json)
    print(f"command output: {log}", flush=True)
    problem = verdict(report, args.target, args.max_429)
    if problem:
        print(f"FAIL: {problem}", file=sys.stderr)
        return 0 if args.no_check else 1
    if args.auto:
        print(f"OK: auto reached {args.target} of the best fixed setting, 429s below limit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
