"""`merge_runs`: runs made independently (several machines, each against its own server)
into one run directory, written whole or not at all.

The merged run is built in a temporary directory beside `out` and renamed to `out` when
complete (atomic.py). Then prepare runs on it like on any run (unless asked not to, or while
no run had instances yet)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct.console.stats import StageStats
from selfinstruct.errors import RunError
from selfinstruct.io.atomic import write_json
from selfinstruct.merging.checks import (
    check_compatible,
    check_distinct,
    check_paths,
    differences,
    shared_random_seeds,
)
from selfinstruct.merging.decide import MergePlan, decide
from selfinstruct.merging.manifest import MANIFEST, manifest, summary_lines, write_paper_files
from selfinstruct.merging.order import name_runs, sort_runs
from selfinstruct.merging.source import opened_runs
from selfinstruct.merging.staging import written_whole
from selfinstruct.merging.write import MergedStore
from selfinstruct.run.drive import run_stage
from selfinstruct.run.open import RunOptions, open_run, opened
from selfinstruct.stages import prepare
from selfinstruct.store.run_store import RunStore


@dataclass
class MergeResult:
    out: Path
    stats: StageStats
    instructions: int  # merged
    labelled: int  # of them, with a label
    answered: int  # of them, with an instances answer
    warnings: list[str] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)  # files written (prepare's included)


def merge_runs(
    paths: Sequence[Path], out: Path, *, prepare: bool = True, quiet: bool = False
) -> MergeResult:
    """Merge the runs at `paths` into a new run directory `out` (see selfinstruct.merging)."""
    if not paths:
        raise RunError("give at least one run directory to merge")
    check_out(out)
    check_paths(paths, out)
    stats = StageStats("merge", unit="instructions")
    with opened_runs(paths) as given:
        runs = sort_runs(given)
        name_runs(runs)
        check_distinct(runs)
        check_compatible(runs)
        warnings = shared_random_seeds(runs)
        differ = differences(runs)
        if differ:
            warnings.append(_differences_warning(differ, runs[0].name))
        plan = decide(runs, stats, quiet=quiet)
        stats.stop()
        result = MergeResult(out, stats, plan.instructions, 0, 0, list(warnings))
        record = manifest(plan, stats, differ, warnings)
        written_whole(out, lambda tmp: _fill(tmp, plan, record, result))
    stats.stop()
    _print(summary_lines(plan, stats), result, quiet=quiet)
    if prepare:
        result.outputs += prepare_merged(result, quiet=quiet)
    return result


def prepare_merged(result: MergeResult, *, quiet: bool = False) -> list[Path]:
    """Prepare on the merged run, as on any run (nothing while no instruction has instances
    yet); returns the files written."""
    if not result.answered:
        return []
    with opened(RunOptions(result.out, quiet=quiet), create=False, generate=False) as ctx:
        return run_stage(ctx, prepare.STAGE_DEF).outputs


def check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if (out / MANIFEST).is_file():  # a merge that stopped (killed) while preparing
            raise RunError(
                f"--out {out} exists and is not empty: it holds a merged run (its {MANIFEST}); "
                f"'selfinstruct prepare --out {out}' writes its dataset if the merge stopped "
                "before it did. Merge writes a new run directory"
            )
        raise RunError(f"--out {out} exists and is not empty; merge writes a new run directory")


def _fill(tmp: Path, plan: MergePlan, record: dict, result: MergeResult) -> None:
    """The merged store, then (opened as a run) its run.json, the paper's files and
    merge.json."""
    with RunStore.open(tmp) as store:
        MergedStore(store, plan).write(record)
    ctx = open_run(RunOptions(tmp, quiet=True), create=False, generate=False)
    try:
        result.labelled = ctx.store.count("labels")
        result.answered = ctx.store.count("instances")
        write_paper_files(ctx)
        write_json(tmp / MANIFEST, record)
    finally:
        ctx.close()
        ctx.store.close()
    result.warnings += _unfinished(result)


def _unfinished(result: MergeResult) -> list[str]:
    """A warning when some merged instructions lack a label or instances (their run had
    not got that far)."""
    missing = result.instructions - min(result.labelled, result.answered)
    if not missing:
        return []
    return [
        f"{missing} of the {result.instructions} merged instructions have no label or no "
        f"instances yet (their run stopped before those stages): 'selfinstruct run --out "
        f"{result.out}' completes them with the settings of the first run in merge order"
    ]


def _differences_warning(differ: dict[str, dict], first: str) -> str:
    shown = "; ".join(
        f"{key}: " + ", ".join(f"{name} {value!r}" for name, value in values.items())
        for key, values in list(differ.items())[:6]
    )
    more = f" (and {len(differ) - 6} more)" if len(differ) > 6 else ""
    return (
        f"the runs differ in settings their records depend on ({shown}{more}); the merged "
        f"run records those of {first}, the first in merge order (merge.json lists each run's)"
    )


def _print(lines: list[str], result: MergeResult, *, quiet: bool) -> None:
    if not quiet:
        print("\n".join(lines), file=sys.stderr)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
