"""Stage 4 outside a live run: export a run's data to one file, or prepare the paper's files."""

from __future__ import annotations

from pathlib import Path

from selfinstruct.exporters import FORMATS
from selfinstruct.importers.paper import read_tasks
from selfinstruct.pipeline import RunOptions, explicit_settings, generated_tasks, open_run, resolve
from selfinstruct.reporting.funnel import EmptyDatasetError, prepare_losses, prepared_counts
from selfinstruct.reporting.summary import print_summary
from selfinstruct.stages.prepare import build, prepare_stats, write_outputs


def export_run(run_dir: Path, fmt: str, out_file: Path, *, quiet: bool = False) -> int:
    ctx = open_run(RunOptions(out=run_dir, quiet=quiet), create=False, generate=False)
    try:
        stats = prepare_stats()
        data = build(generated_tasks(ctx.store), ctx.seeds, ctx.config, ctx.templates,
                     ctx.config.prompt_style, stats)
        if not data.training:
            losses = prepare_losses(prepared_counts(stats.as_dict()))
            raise EmptyDatasetError(f"{run_dir} holds no instance to export ({losses}); "
                                    f"{out_file} was not written")
        _, writer = FORMATS[fmt]
        writer(out_file, data.training, data.encoded)  # under the run's lock
    finally:
        ctx.store.close()
    return len(data.encoded) if fmt == "prompt-completion" else len(data.training)


def prepare_imported(options: RunOptions, instances: Path, labels: Path) -> list[Path]:
    """Stage 4 on the paper's machine_generated_instances.jsonl and is_clf_or_not_*.jsonl."""
    config, templates, seeds = resolve(explicit_settings(options), None)
    tasks = read_tasks(instances, labels)
    stats = prepare_stats()
    data = build(tasks, seeds, config, templates, "completion", stats)
    stats.stop()
    print_summary(stats, quiet=options.quiet)
    if not data.generated:
        losses = prepare_losses(prepared_counts(stats.as_dict()))
        raise EmptyDatasetError(f"no instance of the {len(tasks)} tasks in {instances} "
                                f"survived ({losses}); nothing was written")
    return write_outputs(options.out, data)

