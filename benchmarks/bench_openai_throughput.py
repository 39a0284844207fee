"""Throughput of the OpenAI-compatible backend against a local server with a fixed latency.

A `MockOpenAIServer` (no faults) answers every request after `--latency` seconds, so the best
any client can do with C requests in flight is C / latency requests per second (64 / 0.2 s =
320 req/s). Three clients talk to the same server in the same run:

* ours: `OpenAIBackend.generate` with `max_concurrency=C`, all requests in one call, one
  instance-stage prompt per request (the prompts the instances stage really sends, rendered
  from the packaged templates); the target applies to this one;
* ours in stage waves (for information): the same backend driven the way the classify and
  instances stages drive it, one call per wave of whole `request_batch_size` windows
  (what engine/plan.py did then), each wave waiting for its slowest request;
* the paper's way: one call at a time, `request_batch_size` prompts per call (a list `prompt`
  to /v1/completions) over a plain `httpx.Client`, as the original Self-Instruct loop did.

CPU time of the client, of the server process and of every other process on the machine is
recorded too: on a shared 2-core machine another process's load shows up there.

The server runs in its own process by default (`python -m selfinstruct.testing.openai_server`)
so that the client's GIL and the server's threads do not slow each other down;
`--server thread` runs it in this process instead, for comparison.

    python -m benchmarks.bench_openai_throughput [--requests 1280] [--latency 0.2]
        [--concurrency 64] [--json OUT] [--no-check]

Exits 1 when ours reaches less than `--target` (0.9) of the ideal rate, unless --no-check.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from benchmarks.machine import cpu_model, package_versions, system_busy_seconds
from selfinstruct.llm.backends.openai import OpenAIBackend, OpenAISettings
from selfinstruct.llm.base import Completion, Request
from selfinstruct.llm.openai_format import COMPLETIONS, request_body
from selfinstruct.prompts import TemplateSet
from selfinstruct.stages.instances import InstancesSettings
from selfinstruct.stages.registry import default_stops, template_spec
from selfinstruct.testing.openai_server import DEFAULT_MODEL, MockOpenAIServer

TARGET = 0.9
START_TIMEOUT = 30.0
# The server's main(), with Ctrl-C restored: a shell running us in the background (`cmd &`)
# makes SIGINT ignored, and an ignored signal stays ignored in the child.
SERVER_MAIN = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from selfinstruct.testing.openai_server import main; sys.exit(main())"
)


# ---------------------------------------------------------------------------------------------
# Workload: the requests the instances stage sends (completion style)


def seed_instructions() -> list[tuple[str, bool]]:
    """(instruction, is_classification) of the packaged seed tasks."""
    text = resources.files("selfinstruct").joinpath("data/seed_tasks.jsonl").read_text("utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [(row["instruction"], bool(row["is_classification"])) for row in rows]


def instance_requests(count: int, offset: int = 0) -> list[Request]:
    """`count` instance-stage requests, as `run_instances` builds them (completion style).

    Instructions cycle over the seed tasks; each request has its own seed, so no two are
    alike. max_tokens is the stage's 350 for every request (300 is the stage's value for
    windows holding a classification task; the difference does not matter here).
    """
    settings = InstancesSettings()
    templates = TemplateSet()
    seeds = seed_instructions()
    stop = tuple(default_stops("instances", "completion", settings))
    requests = []
    for i in range(offset, offset + count):
        instruction, is_clf = seeds[i % len(seeds)]
        name = "instances_classification" if is_clf else "instances_generation"
        prompt = templates.render(
            "completion",
            template_spec(name),
            instruction=instruction,
            max_instances=settings.max_instances,
        )
        requests.append(
            Request(
                prompt=prompt.text,
                max_tokens=settings.max_tokens,
                temperature=settings.temperature,
                top_p=settings.top_p,
                presence_penalty=settings.presence_penalty,
                frequency_penalty=settings.frequency_penalty,
                stop=stop,
                seed=i,
                task=name,
            )
        )
    return requests


def prompt_sizes(requests: Sequence[Request]) -> dict[str, float]:
    sizes = [len((r.prompt or "").encode("utf-8")) for r in requests]
    return {"min": min(sizes), "mean": round(sum(sizes) / len(sizes), 1), "max": max(sizes)}


# ---------------------------------------------------------------------------------------------
# The server: in a separate process (default) or in this one


def _process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, AttributeError):
        return None


class Server:
    """A running mock server: its base URL, its CPU time so far, its counters at the end."""

    def __init__(self, base_url: str, latency: float, pid: int | None = None) -> None:
        self.base_url = base_url
        self.latency = latency
        self.pid = pid
        self.stats: dict[str, Any] | None = None

    def cpu_seconds(self) -> float | None:
        """CPU seconds of the server's own process (None when it shares ours)."""
        return _process_cpu_seconds(self.pid) if self.pid is not None else None


@contextlib.contextmanager
def process_server(latency: float) -> Iterator[Server]:
    """The server's command line (`python -m selfinstruct.testing.openai_server`) in a child
    process, stopped with SIGINT so that it prints its counters."""
    command = [
        sys.executable,
        "-c",
        SERVER_MAIN,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--latency",
        str(latency),
    ]
    # stderr goes to a file, never a pipe: a full pipe would block the server
    with (
        tempfile.TemporaryFile(mode="w+") as stderr,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True) as proc,
    ):
        try:
            server = Server(_first_line(proc), latency, proc.pid)
            if not server.base_url.startswith("http"):
                raise RuntimeError(f"the mock server did not start: {_read(stderr)[-2000:]}")
            yield server
        finally:
            _interrupt(proc)
        for line in reversed(_read(stderr).splitlines()):
            with contextlib.suppress(ValueError):
                server.stats = json.loads(line)  # printed by the server on Ctrl-C
                break


def _first_line(proc: subprocess.Popen[str]) -> str:
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    assert stdout is not None
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=START_TIMEOUT).strip()
    except queue.Empty:
        return ""


def _interrupt(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read(file: Any) -> str:
    file.seek(0)
    return file.read()


@contextlib.contextmanager
def thread_server(latency: float) -> Iterator[Server]:
    """A MockOpenAIServer in a thread of this process (shares our GIL)."""
    with MockOpenAIServer(host="127.0.0.1", latency=latency) as mock:
        server = Server(mock.base_url, latency)
        yield server
        server.stats = mock.stats


@contextlib.contextmanager
def measured(server: Server) -> Iterator[dict[str, Any]]:
    """Wall time, this process's CPU time and the server process's CPU time of a block."""
    out: dict[str, Any] = {}
    server_cpu, busy = server.cpu_seconds(), system_busy_seconds()
    cpu = time.process_time()
    start = time.perf_counter()
    yield out
    out["seconds"] = time.perf_counter() - start
    out["client_cpu_seconds"] = time.process_time() - cpu
    out["server_cpu_seconds"] = _delta(server.cpu_seconds(), server_cpu)
    # CPU used meanwhile by every other process on the machine: a noisy neighbour shows here
    others = _delta(system_busy_seconds(), busy)
    if others is not None:
        others -= out["client_cpu_seconds"] + (out["server_cpu_seconds"] or 0.0)
        out["other_processes_cpu_seconds"] = max(others, 0.0)


def _delta(after: float | None, before: float | None) -> float | None:
    return after - before if after is not None and before is not None else None


# ---------------------------------------------------------------------------------------------
# The two clients


def bench_ours(server: Server, count: int, concurrency: int, warmup: int) -> dict[str, Any]:
    settings = OpenAISettings(base_url=server.base_url, max_concurrency=concurrency)
    backend = OpenAIBackend(settings, DEFAULT_MODEL, api_key=None)
    try:
        if warmup:
            _check(backend.generate(instance_requests(warmup, offset=10**6)), warmup)
        requests = instance_requests(count)
        with measured(server) as out:
            results = backend.generate(requests)
        _check(results, count)
        retries = dict(backend.counters)
    finally:
        backend.close()
    seconds = out["seconds"]
    return {
        **out,
        "requests": count,
        "prompts": count,
        "requests_per_second": count / seconds,
        "prompts_per_second": count / seconds,
        "client_cpu_ms_per_request": 1000 * out["client_cpu_seconds"] / count,
        "backend_counters": retries,
        "prompt_bytes": prompt_sizes(requests),
    }


def stage_wave_size(concurrency: int, batch: int) -> int:
    """Requests per `stream` call of the classify and instances stages on a fresh run: whole
    windows of `request_batch_size`, as many as the per-record stages sent at once before
    they served feeds."""
    return windows_per_wave(concurrency, batch) * batch


def windows_per_wave(concurrency: int, batch_size: int) -> int:
    """How the stages grouped windows into waves before they kept slots busy continuously:
    about eight times the requests in flight per wave."""
    return 1 if concurrency <= 1 else -(-(8 * concurrency) // batch_size)


def bench_waves(server: Server, count: int, concurrency: int, batch: int) -> dict[str, Any]:
    """Ours driven the way the stages drive it: one `generate` call per wave of
    `stage_wave_size` requests, each wave waiting for its slowest request. For information;
    the target applies to `ours`."""
    size = stage_wave_size(concurrency, batch)
    settings = OpenAISettings(base_url=server.base_url, max_concurrency=concurrency)
    backend = OpenAIBackend(settings, DEFAULT_MODEL, api_key=None)
    try:
        _check(backend.generate(instance_requests(concurrency, offset=10**6)), concurrency)
        requests = instance_requests(count)
        waves = [requests[i : i + size] for i in range(0, count, size)]
        with measured(server) as out:
            for wave in waves:
                _check(backend.generate(wave), len(wave))
    finally:
        backend.close()
    seconds = out["seconds"]
    rounds = sum(-(-len(wave) // concurrency) for wave in waves)
    return {
        **out,
        "requests": count,
        "prompts": count,
        "wave_size": size,
        "waves": len(waves),
        "ideal_seconds": rounds * server.latency,
        "requests_per_second": count / seconds,
        "prompts_per_second": count / seconds,
        "client_cpu_ms_per_request": 1000 * out["client_cpu_seconds"] / count,
    }


def bench_paper(server: Server, prompts: int, batch: int) -> dict[str, Any]:
    requests = instance_requests(prompts)
    url = server.base_url + COMPLETIONS.removeprefix("/v1")
    calls = [requests[i : i + batch] for i in range(0, len(requests), batch)]
    with httpx.Client(timeout=120.0) as client:
        _paper_call(client, url, instance_requests(batch, offset=10**6))  # warm-up
        with measured(server) as out:
            for chunk in calls:
                _paper_call(client, url, chunk)
    seconds = out["seconds"]
    return {
        **out,
        "requests": len(calls),
        "prompts": prompts,
        "requests_per_second": len(calls) / seconds,
        "prompts_per_second": prompts / seconds,
        "client_cpu_ms_per_request": 1000 * out["client_cpu_seconds"] / len(calls),
    }


def _paper_call(client: httpx.Client, url: str, chunk: Sequence[Request]) -> None:
    """One blocking call with a list of prompts, like the paper's `make_requests`."""
    body = request_body(chunk[0], DEFAULT_MODEL)
    body["prompt"] = [r.prompt for r in chunk]
    response = client.post(url, json=body)
    response.raise_for_status()
    choices = response.json()["choices"]
    if len(choices) != len(chunk):
        raise RuntimeError(f"asked for {len(chunk)} completions, got {len(choices)}")


def _check(results: Sequence[Any], count: int) -> None:
    if len(results) != count or not all(isinstance(r, Completion) for r in results):
        raise RuntimeError(f"expected {count} completions, got {len(results)}")


# ---------------------------------------------------------------------------------------------
# Reporting


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }
    with contextlib.suppress(OSError, AttributeError):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def versions() -> dict[str, str]:
    return package_versions(("selfinstruct", "aiohttp", "httpx"))


def table(report: dict[str, Any]) -> str:
    p = report["parameters"]
    ours, paper = report["ours"], report["paper"]
    rows = [
        (
            "method",
            "calls",
            "prompts",
            "seconds",
            "prompts/s",
            "ideal/s",
            "of ideal",
            "client CPU ms/call",
        ),
        (
            f"ours: {p['concurrency']} in flight, 1 prompt/call",
            ours["requests"],
            ours["prompts"],
            f"{ours['seconds']:.2f}",
            f"{ours['prompts_per_second']:.1f}",
            f"{report['ideal']['ours_rps']:.1f}",
            f"{report['ratios']['ours_to_ideal']:.3f}",
            f"{ours['client_cpu_ms_per_request']:.2f}",
        ),
    ]
    waves = report["ours_in_waves"]
    if waves:
        rows.append(
            (
                f"ours in {waves['waves']} stage waves of {waves['wave_size']}",
                waves["requests"],
                waves["prompts"],
                f"{waves['seconds']:.2f}",
                f"{waves['prompts_per_second']:.1f}",
                f"{report['ideal']['ours_rps']:.1f}",
                f"{report['ratios']['ours_in_waves_to_ideal']:.3f}",
                f"{waves['client_cpu_ms_per_request']:.2f}",
            )
        )
    rows += [
        (
            f"paper: 1 in flight, {p['paper_batch']} prompts/call",
            paper["requests"],
            paper["prompts"],
            f"{paper['seconds']:.2f}",
            f"{paper['prompts_per_second']:.1f}",
            f"{report['ideal']['paper_pps']:.1f}",
            f"{report['ratios']['paper_to_ideal']:.3f}",
            f"{paper['client_cpu_ms_per_request']:.2f}",
        ),
    ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    r = report["ratios"]
    server_cpu = ours.get("server_cpu_seconds")
    lines += [
        "",
        f"speed-up of ours over the paper's loop: {r['speedup_vs_paper']:.2f}x "
        f"(ideal {report['ideal']['speedup']:.1f}x)",
        f"ours: client CPU {ours['client_cpu_seconds']:.2f} s"
        + (f", server CPU {server_cpu:.2f} s" if server_cpu is not None else "")
        + f" over {ours['seconds']:.2f} s wall; prompt bytes {ours['prompt_bytes']}; "
        f"backend counters {ours['backend_counters'] or 'none (no retries, no errors)'}",
        f"server ({p['server']}): {report.get('server_stats')}",
    ]
    if waves:
        best = waves["requests"] / waves["ideal_seconds"]
        lines.append(
            f"stage waves: {waves['wave_size']} requests per stream() call with "
            f"{p['concurrency']} in flight; best possible {best:.1f} req/s "
            f"({best / report['ideal']['ours_rps']:.3f} of ideal), reached "
            f"{waves['requests_per_second'] / best:.3f} of that"
        )
    others = ours.get("other_processes_cpu_seconds")
    if others is not None:
        lines.append(
            f"other processes used {others:.2f} CPU s during ours "
            f"({others / ours['seconds']:.2f} of {report['machine']['cpu_count']} CPUs)"
            + ("  <- noisy machine, numbers may be low" if others / ours["seconds"] > 0.2 else "")
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    start_server = process_server if args.server == "process" else thread_server
    warmup = args.concurrency if args.warmup is None else args.warmup
    with start_server(args.latency) as server:
        ours = bench_ours(server, args.requests, args.concurrency, warmup)
        waves = (
            bench_waves(server, args.requests, args.concurrency, args.paper_batch)
            if args.waves
            else None
        )
        paper = bench_paper(server, args.paper_prompts, args.paper_batch)
    ideal_rps = args.concurrency / args.latency
    ideal_pps = args.paper_batch / args.latency
    return {
        "benchmark": "openai_throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "command": " ".join(["python -m benchmarks.bench_openai_throughput", *sys.argv[1:]]),
        "parameters": {
            "requests": args.requests,
            "latency": args.latency,
            "concurrency": args.concurrency,
            "warmup": warmup,
            "paper_prompts": args.paper_prompts,
            "paper_batch": args.paper_batch,
            "server": args.server,
            "target": args.target,
            "max_tokens": InstancesSettings().max_tokens,
        },
        "ours": ours,
        "ours_in_waves": waves,
        "paper": paper,
        "ideal": {"ours_rps": ideal_rps, "paper_pps": ideal_pps, "speedup": ideal_rps / ideal_pps},
        "ratios": {
            "ours_to_ideal": ours["requests_per_second"] / ideal_rps,
            "ours_in_waves_to_ideal": waves["requests_per_second"] / ideal_rps if waves else None,
            "paper_to_ideal": paper["prompts_per_second"] / ideal_pps,
            "speedup_vs_paper": ours["prompts_per_second"] / paper["prompts_per_second"],
        },
        "server_stats": server.stats,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_openai_throughput",
        description="Requests per second of OpenAIBackend against a local mock server with "
        "fixed latency, next to the paper's one-call-at-a-time loop.",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=1280,
        help="requests (one prompt each) sent by ours (default: 1280)",
    )
    parser.add_argument(
        "--latency", type=float, default=0.2, help="the server's seconds per answer (default: 0.2)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="OpenAISettings.max_concurrency (default: 64)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="requests sent before timing, to open the connections "
        "(default: --concurrency, i.e. one full wave)",
    )
    parser.add_argument(
        "--paper-prompts", type=int, default=200, help="prompts sent the paper's way (default: 200)"
    )
    parser.add_argument(
        "--paper-batch",
        type=int,
        default=5,
        help="request_batch_size: prompts per call the paper's way, and the "
        "window size of the stage waves (default: 5)",
    )
    parser.add_argument(
        "--no-waves",
        dest="waves",
        action="store_false",
        help="skip the informational run in stage-sized waves",
    )
    parser.add_argument(
        "--server",
        choices=("process", "thread"),
        default="process",
        help="run the mock server in its own process (default) or in a thread of this one",
    )
    parser.add_argument(
        "--target",
        type=float,
        default=TARGET,
        help=f"least acceptable fraction of the ideal rate (default: {TARGET})",
    )
    parser.add_argument("--json", metavar="OUT", type=Path, help="also write the report here")
    parser.add_argument(
        "--no-check", action="store_true", help="exit 0 even when ours misses the target"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if min(args.requests, args.concurrency, args.paper_prompts, args.paper_batch) < 1:
        parser.error("--requests, --concurrency, --paper-prompts and --paper-batch must be >= 1")
    if args.latency <= 0:
        parser.error("--latency must be > 0 (the ideal rate is concurrency / latency)")
    machine_info = machine()  # before the run: the load average is the machine's, not ours
    report = run(args)
    report["machine"] = machine_info
    print(table(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    ratio = report["ratios"]["ours_to_ideal"]
    if ratio < args.target:
        print(
            f"FAIL: ours reached {ratio:.3f} of the ideal rate (target {args.target})",
            file=sys.stderr,
        )
        return 0 if args.no_check else 1
    print(f"OK: ours reached {ratio:.3f} of the ideal rate (target {args.target})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
