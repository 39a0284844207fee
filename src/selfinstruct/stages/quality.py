"""The numbers of a run's quality stages, for run.json, the report, the card and the API."""

from __future__ import annotations

from typing import Any

from selfinstruct.engine.context import RunContext
from selfinstruct.stages import judge, relabel


def quality_numbers(ctx: RunContext) -> dict[str, Any]:
    """The current judge's Table 2 and the label agreement, for the checks that ran."""
    store, config = ctx.store, ctx.config
    found: dict[str, Any] = {}
    table = judge.quality_of_run(store, config, judge.current_judge(ctx))
    if table is not None:
        found["quality"] = {"judge": judge.judge_name(config), **table.as_dict()}
    if relabel.enabled(config) and store.has_quality and store.count("relabels"):
        found["label_agreement"] = relabel.agreement(store)
    return found
