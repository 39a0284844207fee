"""What a merge reports: `merge.json` (also in the store's meta, under `merge`), the summary
lines, and the paper's files (whose instruction and instance records name their source run:
store/paper_files.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from selfinstruct.console.stats import StageStats
from selfinstruct.console.summary import counts
from selfinstruct.engine.context import RunContext
from selfinstruct.merging.decide import MergePlan
from selfinstruct.stages.registry import STAGES
from selfinstruct.store.schema import now

FORMAT = "selfinstruct-merge"
FORMAT_VERSION = 1
MANIFEST = "merge.json"
ORDER = (
    "runs sorted by (random_seed, created_at, run_id); round k takes bootstrap batch k of "
    "each run in that order; within a batch, the run's order (its instruction ids). Each "
    "candidate is kept unless its text equals a pool item's (duplicate) or its ROUGE-L "
    "F-measure against a pool item is above rouge_threshold (rouge); the pool is the seeds "
    "then every instruction kept before it."
)


def manifest(
    plan: MergePlan, stats: StageStats, differences: dict[str, Any], warnings: list[str]
) -> dict[str, Any]:
    first = plan.runs[0]
    settings = first.settings
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": now(),
        "order": ORDER,
        "rule": {
            "rouge_threshold": settings.rouge_threshold,
            "tokenizer": settings.tokenizer,
            "classification_only": settings.classification_only,
            "most_similar": settings.most_similar,
            "request_batch_size": settings.request_batch_size,
        },
        "seeds": {"count": len(first.ctx.seeds), "sha256": first.seed_hash},
        "runs": [_run_entry(plan, position) for position in range(len(plan.runs))],
        "instructions": stats.kept,
        "dropped": dict(sorted(stats.dropped.items())),
        "differences": differences,
        "warnings": warnings,
        "seconds_deciding": round(stats.seconds, 3),
    }


def _run_entry(plan: MergePlan, position: int) -> dict[str, Any]:
    run = plan.runs[position]
    config = run.ctx.config
    judged = plan.judged[position]
    return {
        "position": position,
        "name": run.name,
        "path": str(run.path.resolve()),
        "run_id": run.run_id,
        "created_at": run.created_at,
        "random_seed": run.random_seed,
        "backend": config.backend,
        "model": config.model,
        "prompt_style": config.prompt_style,
        "batches": len(run.batches),
        "instructions": sum(judged.values()),
        "kept": judged["kept"],
        "dropped": {k: n for k, n in sorted(judged.items()) if k != "kept"},
        "fingerprints": run.fingerprints,
    }


def summary_lines(plan: MergePlan, stats: StageStats) -> list[str]:
    """ "[merge] kept 75 of 90 instructions, dropped 15 (rouge 10, duplicate 5); 3 runs, 2.1s"
    and one line per run."""
    judged = sum((Counter(c) for c in plan.judged), Counter())
    total = sum(judged.values())
    line = f"[merge] kept {stats.kept} of {total} instructions"
    if stats.dropped_total:
        line += f", dropped {stats.dropped_total} ({counts(stats.dropped)})"
    lines = [f"{line}; {len(plan.runs)} runs, {stats.seconds:.1f}s"]
    for run, found in zip(plan.runs, plan.judged, strict=True):
        dropped = {k: n for k, n in found.items() if k != "kept"}
        text = f"  {run.name}: kept {found['kept']} of {sum(found.values())}"
        lines.append(text + (f" ({counts(dropped)})" if dropped else ""))
    return lines


def write_paper_files(ctx: RunContext) -> None:
    """The paper's files of every stage with records (each instruction's source is in the
    instruction and instance files: store/paper_files.py)."""
    for stage in STAGES:
        if stage.write_files is not None and stage.has_records(ctx.store):
            stage.write_files(ctx)
