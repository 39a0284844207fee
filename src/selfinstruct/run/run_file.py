"""run.json: a human-readable description of a run, rewritten whenever the run changes (the
store is authoritative)."""

from __future__ import annotations

from selfinstruct.engine.context import RunContext
from selfinstruct.io.atomic import write_json
from selfinstruct.seeds import seed_hash
from selfinstruct.stages import registry
from selfinstruct.stages.bootstrap.loop import pool_missing
from selfinstruct.store.schema import FORMAT, FORMAT_VERSION, now
from selfinstruct.views.funnel import run_funnel


def write_run_file(ctx: RunContext) -> None:
    """run.json: a human-readable description of the run (the database is authoritative)."""
    store, config = ctx.store, ctx.config
    funnel = run_funnel(store, config.num_instructions, config.prompt_style)
    write_json(
        store.run_dir / "run.json",
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": store.get_meta("created_at"),
            "updated_at": now(),
            "model": ctx.model_description(),
            "seeds": {
                "path": config.seeds or "(packaged)",
                "count": len(ctx.seeds),
                "sha256": seed_hash(ctx.seeds),
            },
            "versions": store.get_meta("versions"),
            "counts": run_counts(ctx),
            "labels": funnel.labels,
            "funnel": funnel.as_dict(),
            **registry.stage_numbers(ctx),
            **staleness(ctx),
            "config": config.to_dict(),
        },
    )


def run_counts(ctx: RunContext) -> dict[str, int]:
    """Records of each kind, as each stage counts its own (judgments: the current judge's;
    the quality checks' only while they are on)."""
    counts: dict[str, int] = {}
    for stage in registry.STAGES:
        if stage.counts is not None:
            counts.update(stage.counts(ctx))
    return counts


def staleness(ctx: RunContext) -> dict[str, dict[str, float]]:
    """How stale bootstrap's prompts were (bootstrap.batches_in_flight): how many accepted
    instructions each prompt's pool was missing; nothing for a run that never recorded it."""
    missing = ctx.store.pool.pool_missing()
    return {"bootstrap_pool_missing": pool_missing(missing)} if missing else {}
