"""Prepare's dataset, built from parsed tasks: the quality screen first, then the paper's
filters, the cap on instances per task, the seed tasks when asked for, and the fine-tuning
encoding (inputs sometimes dropped, one of the layouts drawn, duplicates removed, shuffled).
Everything it needs is given; it reads no store, so the same code builds the dataset of a run,
of a read-only view and of the paper's files.

Every task given is either kept (an instance of it is in the dataset) or counted under one
reason as a task dropped (`task_reason`), so the tasks kept and dropped add up to the tasks
answered."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from selfinstruct.config import Config
from selfinstruct.console.stats import StageStats
from selfinstruct.dataset.finetune_format import augment_input, encode
from selfinstruct.dataset.settings import STAGE, PrepareSettings
from selfinstruct.exporters.records import Example, PromptCompletion, Provenance
from selfinstruct.filters import reasons
from selfinstruct.filters.instance import count_verdicts, instance_verdicts
from selfinstruct.filters.screen import Drop, Screen
from selfinstruct.prompts import TemplateSet
from selfinstruct.seeds.task import SeedTask
from selfinstruct.views.tasks import ParsedTask


@dataclass
class PreparedData:
    generated: list[Example] = field(default_factory=list)
    training: list[Example] = field(default_factory=list)
    encoded: list[PromptCompletion] = field(default_factory=list)
    screened: list[Drop] = field(default_factory=list)  # what the quality screen dropped
    task_count: int = 0  # tasks with at least one instance in the data
    dropped_tasks: list[tuple[ParsedTask, str]] = field(default_factory=list)  # and why
    tasks: list[ParsedTask] = field(default_factory=list)  # every task given
    # Each considered task's instances' fates by instruction id: "" kept, else the reason it
    # was dropped (the cap's included); the report shows them without replaying the filters.
    fates: dict[int, list[str]] = field(default_factory=dict)


def build(
    tasks: Sequence[ParsedTask],
    seeds: Sequence[SeedTask],
    config: Config,
    templates: TemplateSet,
    stats: StageStats,
    provenance: Mapping[int, Provenance] | None = None,
    screen: Screen | None = None,
) -> PreparedData:
    """The dataset; with `provenance` (by instruction id) its examples carry their sources;
    with a `screen`, its quality checks drop tasks and instances first."""
    settings: PrepareSettings = config.section(STAGE)
    rng = random.Random(f"{config.random_seed}:{STAGE}")
    data = PreparedData(tasks=list(tasks))
    screen = screen or Screen()
    considered = [t for t in tasks if not left_out(t, settings)]
    screen.check_instructions([(t.instruction_id, t.instruction) for t in considered])
    for task in tasks:
        if left_out(task, settings):
            data.dropped_tasks.append((task, reasons.NOT_CLASSIFICATION))
            continue
        verdicts, drops = task_verdicts(task, screen)
        data.screened += drops
        count_verdicts(verdicts, stats.dropped)
        passed = [i for i, v in enumerate(verdicts) if v is None]
        if not passed:
            data.fates[task.instruction_id] = _fates(verdicts, set())
            data.dropped_tasks.append((task, task_reason(task, verdicts)))
            continue
        data.task_count += 1
        if len(passed) > settings.max_instances_per_task:
            stats.drop(reasons.OVER_TASK_CAP, len(passed) - settings.max_instances_per_task)
            passed = rng.sample(passed, settings.max_instances_per_task)
        data.fates[task.instruction_id] = _fates(verdicts, set(passed))
        every = task.pairs
        pairs = [every[i] for i in passed]
        source = provenance[task.instruction_id] if provenance is not None else None
        data.generated.extend(Example(task.instruction, i, o, source) for i, o in pairs)
    for _, reason in data.dropped_tasks:
        stats.lose("tasks", reason)
    stats.notes.update(screen.kept_notes())
    data.training = list(data.generated)
    if settings.include_seed_tasks:
        data.training += [
            Example(
                t.instruction,
                x.input,
                x.output,
                seed_provenance(t) if provenance is not None else None,
            )
            for t in clean_seeds(seeds, screen, stats)
            for x in t.instances
        ]
    layouts = templates.finetune_layouts()
    encoded: dict[PromptCompletion, None] = {}
    for example in data.training:
        augmented = Example(
            example.instruction,
            augment_input(example.input, rng, settings.field_removal_probability),
            example.output,
        )
        encoded.setdefault(encode(augmented, layouts, rng, settings.end_of_text))
    stats.lose("examples", reasons.DUPLICATE_PROMPT_COMPLETION, len(data.training) - len(encoded))
    data.encoded = list(encoded)
    rng.shuffle(data.encoded)
    stats.kept = len(data.generated)
    stats.notes["tasks_kept"] = data.task_count
    stats.notes["examples_written"] = len(data.encoded)
    return data


def _fates(verdicts: Sequence[str | None], chosen: set[int]) -> list[str]:
    """Each instance's fate: "" when in the dataset, else its verdict or the per-task cap."""
    return [v or ("" if i in chosen else reasons.OVER_TASK_CAP) for i, v in enumerate(verdicts)]


def clean_seeds(seeds: Sequence[SeedTask], screen: Screen, stats: StageStats) -> list[SeedTask]:
    """The seed tasks whose instruction and instances pass decontamination (a seed set may
    hold evaluation tasks too); the others are counted as seed tasks lost."""
    if screen.decontaminator is None:
        return list(seeds)
    matched = screen.decontaminator.instruction_matches([t.instruction for t in seeds])
    kept = []
    for task, match in zip(seeds, matched, strict=True):
        hit = match or next(
            (
                m
                for x in task.instances
                if (m := screen.decontaminator.instance_match(x.input, x.output))
            ),
            None,
        )
        if hit is None:
            kept.append(task)
        else:
            stats.lose("seed tasks", reasons.CONTAMINATED)
    return kept


def left_out(task: ParsedTask, settings: PrepareSettings) -> bool:
    """Whether prepare leaves the task out whole (only classification tasks wanted)."""
    return settings.classification_tasks_only and not task.is_classification


def task_reason(task: ParsedTask, verdicts: Sequence[str | None]) -> str:
    """Why a task has no instance in the dataset, given its instances' verdicts (one reason
    per task): `truncated` or `unparseable` when its answer gave no instance; else the reason
    that dropped most of its instances, a tie going to the one prepare applies first
    (`reasons.PREPARE_ORDER`; a plug-in check's reason after those, by name)."""
    if not task.instances:
        return reasons.TRUNCATED if task.truncated else reasons.UNPARSEABLE
    counted = Counter(reason for reason in verdicts if reason)
    order = reasons.PREPARE_ORDER
    return min(
        counted,
        key=lambda r: (-counted[r], order.index(r) if r in order else len(order), r),
    )


def task_verdicts(task: ParsedTask, screen: Screen) -> tuple[list[str | None], list[Drop]]:
    """Each instance's drop reason before the per-task cap (None: kept), and the quality
    screen's drops with their details: the screen first, then the paper's filters on what
    the screen keeps."""
    whole = screen.task_drop(task.instruction_id)
    if whole is not None:
        return [whole.reason] * len(task.instances), [whole]
    drops = [screen.instance_drop(record) for record in task.instances]
    verdicts: list[str | None] = [drop.reason if drop else None for drop in drops]
    passed = [i for i, reason in enumerate(verdicts) if reason is None]
    for i, reason in zip(passed, instance_verdicts([task.pairs[i] for i in passed]), strict=True):
        verdicts[i] = reason
    return verdicts, [drop for drop in drops if drop is not None]


def seed_provenance(seed: SeedTask) -> Provenance:
    """A seed task in a dataset: no instruction id, its own seed id as its source."""
    return Provenance(None, (seed.id,), ())
