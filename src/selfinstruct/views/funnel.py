"""What each stage of a run kept and lost, counted over the whole run store (not only the
last command), for run.json and for the verdict on a dataset that came out empty or small."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from selfinstruct.console.stats import StageStats
from selfinstruct.console.summary import counts
from selfinstruct.parsing.labels import label_counts
from selfinstruct.store.run_store import RunStore

# Below this share of the instructions asked for, a finished dataset gets a warning.
SHORTFALL_SHARE = 0.5


@dataclass
class Funnel:
    asked: int
    instructions: int = 0
    candidates_dropped: dict[str, int] = field(default_factory=dict)
    responses: dict[str, int] = field(default_factory=dict)  # bootstrap requests by outcome
    labels: dict[str, int] = field(default_factory=dict)
    answered: int = 0  # instructions with an instances response
    answered_truncated: int = 0
    prepared: dict[str, Any] | None = None  # the last prepare's counts

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_funnel(store: RunStore, asked: int, style: str) -> Funnel:
    decisions = store.pool.candidate_decisions()
    finish = store.instances.finish_reasons()
    return Funnel(
        asked=asked,
        instructions=store.pool.instruction_count(),
        candidates_dropped={k: v for k, v in sorted(decisions.items()) if k != "kept"},
        responses=dict(sorted(store.pool.request_outcomes().items())),
        labels=label_counts((raw for raw, _ in store.labels.all().values()), style),
        answered=sum(finish.values()),
        answered_truncated=finish.get("length", 0),
        prepared=store.get_meta("prepared"),
    )


def prepared_counts(stats: dict[str, Any]) -> dict[str, Any]:
    """The part of prepare's summary that describes the dataset (kept for run.json)."""
    notes = stats.get("notes", {})
    return {
        "instances": stats["kept"],
        "tasks": notes.get("tasks_kept", 0),
        "examples": notes.get("examples_written", 0),
        "instances_dropped": stats.get("dropped", {}),
        "tasks_dropped": stats.get("lost", {}).get("tasks", {}),
    }


def empty_dataset_message(funnel: Funnel) -> str:
    """Which stage lost everything, and why (counts by reason)."""
    return (
        f"the dataset is empty: {_where_lost(funnel)}. Nothing was written to "
        "finetuning_data/ or exports/."
    )


def _where_lost(f: Funnel) -> str:
    if f.instructions == 0:
        requests = sum(f.responses.values())
        text = f"bootstrap accepted no instruction in {requests} requests"
        if f.responses:
            text += f" (responses: {counts(f.responses)})"
        if f.candidates_dropped:
            text += (
                f"; candidates dropped {sum(f.candidates_dropped.values())} "
                f"({counts(f.candidates_dropped)})"
            )
        return text
    if sum(f.labels.values()) == 0:
        return (
            f"classify labelled none of the {f.instructions} instructions (its requests "
            "failed; see the classify summary above)"
        )
    if f.answered == 0:
        return (
            f"instances got no answer for any of the {f.instructions} instructions (its "
            "requests failed; see the instances summary above)"
        )
    return f"prepare kept no instance of the {f.answered} instance responses ({_prepare_losses(f)})"


def _prepare_losses(f: Funnel) -> str:
    text = prepare_losses(f.prepared or {})
    if f.answered_truncated:
        text += f"; {f.answered_truncated} instance responses were cut off at max_tokens"
    return text


def stats_losses(stats: StageStats) -> str:
    """prepare_losses for the counts of one prepare that has just run."""
    return prepare_losses(prepared_counts(stats.as_dict()))


def prepare_losses(prepared: dict[str, Any]) -> str:
    """ "tasks dropped 3: unparseable 3; instances dropped 2: duplicate 2" (one unit each)."""
    parts = []
    for unit in ("tasks", "instances"):
        if dropped := prepared.get(f"{unit}_dropped"):
            parts.append(f"{unit} dropped {sum(dropped.values())}: {counts(dropped)}")
    return "; ".join(parts) or "nothing parsed"


def shortfall_warning(f: Funnel) -> str | None:
    """A warning when the dataset covers far fewer tasks than were asked for."""
    tasks = (f.prepared or {}).get("tasks", 0)
    if not f.asked or tasks >= SHORTFALL_SHARE * f.asked:
        return None
    text = f"the dataset covers {tasks} of the {f.asked} instructions asked for"
    if f.instructions < f.asked:
        text += f": bootstrap accepted {f.instructions}"
        if f.candidates_dropped:
            text += f" (candidates dropped: {counts(f.candidates_dropped)})"
    if tasks < f.instructions:
        text += f"; {f.instructions - tasks} instructions gave no instance ({_prepare_losses(f)})"
    return text
