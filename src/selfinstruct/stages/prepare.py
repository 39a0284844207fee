"""Stage 4: parse the raw instances, filter them, and format the fine-tuning data."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct.config import Config
from selfinstruct.exporters import FORMATS, Example, PromptCompletion
from selfinstruct.exporters.jsonl import write_jsonl
from selfinstruct.filters.instance import filter_instances
from selfinstruct.parsing.instances import parse_instances
from selfinstruct.prompts import TemplateSet
from selfinstruct.reporting.stats import StageStats
from selfinstruct.seeds.task import SeedTask
from selfinstruct.stages.finetune_format import augment_input, encode

STAGE = "prepare"
FINETUNE_DIR = "finetuning_data"
EXPORT_DIR = "exports"


@dataclass(frozen=True)
class GeneratedTask:
    """One instruction with its label and raw instances, from a run or from paper files."""

    instruction: str
    is_classification: bool
    raw_instances: str
    truncated: bool


@dataclass
class PreparedData:
    generated: list[Example] = field(default_factory=list)
    training: list[Example] = field(default_factory=list)
    encoded: list[PromptCompletion] = field(default_factory=list)

    @property
    def task_count(self) -> int:
        """Generated tasks with at least one instance in the data."""
        return len({example.instruction for example in self.generated})


def prepare_stats() -> StageStats:
    return StageStats(STAGE, unit="instances")


def build(tasks: Sequence[GeneratedTask], seeds: Sequence[SeedTask], config: Config,
          templates: TemplateSet, style: str, stats: StageStats) -> PreparedData:
    settings = config.prepare
    rng = random.Random(f"{config.random_seed}:{STAGE}")
    data = PreparedData()
    for task in tasks:
        if settings.classification_tasks_only and not task.is_classification:
            stats.lose("tasks", "not_classification")
            continue
        pairs = parse_instances(task.raw_instances, task.truncated, task.is_classification, style)
        if not pairs:
            stats.lose("tasks", "unparseable")
        pairs = filter_instances(pairs, stats.dropped)
        if len(pairs) > settings.max_instances_per_task:
            stats.drop("over_task_cap", len(pairs) - settings.max_instances_per_task)
            pairs = rng.sample(pairs, settings.max_instances_per_task)
        data.generated.extend(Example(task.instruction, i, o) for i, o in pairs)
    data.training = list(data.generated)
    if settings.include_seed_tasks:
        data.training += [Example(t.instruction, x.input, x.output)
                          for t in seeds for x in t.instances]
    layouts = templates.finetune_layouts()
    encoded: dict[PromptCompletion, None] = {}
    for example in data.training:
        augmented = Example(example.instruction,
                            augment_input(example.input, rng, settings.field_removal_probability),
                            example.output)
        encoded.setdefault(encode(augmented, layouts, rng, settings.end_of_text))
    stats.lose("examples", "duplicate_prompt_completion", len(data.training) - len(encoded))
    data.encoded = list(encoded)
    rng.shuffle(data.encoded)
    stats.kept = len(data.generated)
    stats.notes["tasks_kept"] = data.task_count
    stats.notes["examples_written"] = len(data.encoded)
    return data


def write_outputs(run_dir: Path, data: PreparedData) -> list[Path]:
    """The paper's fine-tuning files and every export format; returns the paths written."""
    ft = run_dir / FINETUNE_DIR
    paths = [ft / "all_generated_instances.jsonl",
             ft / f"gpt3_finetuning_data_{len(data.encoded)}.jsonl"]
    write_jsonl(paths[0], ({"instruction": e.instruction, "input": e.input, "output": e.output}
                           for e in data.generated))
    for old in ft.glob("gpt3_finetuning_data_*.jsonl"):
        if old != paths[1]:
            old.unlink()
    write_jsonl(paths[1], ({"prompt": r.prompt, "completion": r.completion}
                           for r in data.encoded))
    for filename, writer in FORMATS.values():
        path = run_dir / EXPORT_DIR / filename
        writer(path, data.training, data.encoded)
        paths.append(path)
    return paths
