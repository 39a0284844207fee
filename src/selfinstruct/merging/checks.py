"""What runs must share to be merged, and what they may differ in (reported, not refused).

Refused, with the runs and values named: a run given twice (the same directory, or a copy of
the same run: equal creation time and settings), different seed sets (the pool the ROUGE-L
rule starts from would differ), and different settings of the rule itself (`RULE`).
Differences in anything else the records depend on (model, prompt style, decoding
settings...) are reported: the merged run records the settings of the first run in merge
order."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfinstruct.errors import RunError
from selfinstruct.merging.source import SourceRun
from selfinstruct.stages.registry import STAGES

# Bootstrap settings the runs must share: the ROUGE-L rule (threshold, tokenizer, the seeds it
# starts from with classification_only, how many most similar it records) and the batch size
# merged request indices are laid out by.
RULE = ("rouge_threshold", "tokenizer", "classification_only", "most_similar", "request_batch_size")
# Fingerprint keys expected to differ between runs made side by side.
PER_RUN = ("random_seed",)


def check_paths(paths: Sequence[Path], out: Path) -> None:
    """Each run given once, and none of them the output."""
    seen: dict[Path, Path] = {}
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            raise RunError(f"{path} is given twice (as {seen[resolved]} and {path})")
        seen[resolved] = path
        if resolved == out.resolve():
            raise RunError(f"--out {out} is one of the runs to merge; choose a new directory")


def check_distinct(runs: Sequence[SourceRun]) -> None:
    """No run is a copy of another (same creation time and settings)."""
    seen: dict[str, SourceRun] = {}
    for run in runs:
        if run.run_id in seen:
            first = seen[run.run_id]
            raise RunError(
                f"{first.path} and {run.path} are the same run (same creation time "
                f"{run.created_at} and settings: one is a copy of the other); give it once"
            )
        seen[run.run_id] = run


def check_compatible(runs: Sequence[SourceRun]) -> None:
    """One seed set and one ROUGE-L rule for all runs."""
    hashes = {run.seed_hash for run in runs}
    if len(hashes) > 1:
        listed = "; ".join(
            f"{run.path}: {len(run.ctx.seeds)} seed tasks, sha256 {run.seed_hash[:12]}"
            for run in runs
        )
        raise RunError(
            f"cannot merge runs made from different seed sets ({listed}): the ROUGE-L pool "
            "starts from the seeds, so their instructions were filtered against different pools"
        )
    for name in RULE:
        values = [getattr(run.settings, name) for run in runs]
        if any(value != values[0] for value in values):
            listed = ", ".join(f"{run.path}: {v!r}" for run, v in zip(runs, values, strict=True))
            raise RunError(
                f"cannot merge runs with different bootstrap.{name} ({listed}): a merge applies "
                "one ROUGE-L rule (threshold, tokenizer, pool, most_similar) and keeps each "
                "run's bootstrap batches (request_batch_size)"
            )


def differences(runs: Sequence[SourceRun]) -> dict[str, dict[str, Any]]:
    """Settings the runs' records depend on that differ between them (their fingerprints,
    but for the per-run random seed), with each run's value by run name."""
    flat = [_flat(run.fingerprints) for run in runs]
    keys = sorted({key for found in flat for key in found})
    return {
        key: {run.name: found.get(key) for run, found in zip(runs, flat, strict=True)}
        for key in keys
        if key.rpartition(".")[2] not in PER_RUN and len({repr(f.get(key)) for f in flat}) > 1
    }


def shared_random_seeds(runs: Sequence[SourceRun]) -> list[str]:
    """Warnings for runs with the same random seed and model: their prompts repeat each
    other's, so most of what the later one wrote is dropped as a duplicate."""
    groups: dict[tuple[int, str], list[str]] = {}
    for run in runs:
        model = f"{run.ctx.choice.name}:{run.ctx.choice.label()}"
        groups.setdefault((run.random_seed, model), []).append(run.name)
    return [
        f"runs {', '.join(names)} share random seed {seed} and model {model}: their bootstrap "
        "prompts are the same, so much of their output repeats (give each run its own "
        "--random-seed)"
        for (seed, model), names in groups.items()
        if len(names) > 1
    ]


def _flat(prints: dict[str, dict]) -> dict[str, Any]:
    """Fingerprint keys across stages: stage settings and templates under the stage's name,
    the model part shared by the stages the run's model answers (a stage with a model of its
    own, the judge, has it under its name)."""
    own_model = {stage.name for stage in STAGES if stage.model is not None}
    found: dict[str, Any] = {}
    for stage, values in prints.items():
        for key, value in values.items():
            if "." in key:
                found[key] = value
            elif key == "templates" or stage in own_model:
                found[f"{stage}.{key}"] = value
            else:
                found[key] = value
    return found
