"""The numbers of a run's quality stages, for run.json, the report, the card and the API."""

from __future__ import annotations

from typing import Any

from selfinstruct.config import Config
from selfinstruct.stages import judge, relabel
from selfinstruct.store.run_store import RunStore


def quality_numbers(store: RunStore, config: Config) -> dict[str, Any]:
    """The judge's Table 2 and the label agreement, for the checks that ran."""
    found: dict[str, Any] = {}
    table = judge.quality_of_run(store, config)
    if table is not None:
        found["quality"] = {"judge": judge.judge_choice(config).label(), **table.as_dict()}
    if relabel.enabled(config) and store.has_quality and store.count("relabels"):
        found["label_agreement"] = relabel.agreement(store)
    return found
