"""Prepare's settings: how the dataset is filtered and formatted, what its card says, and
which quality checks it applies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct.config import Config
from selfinstruct.quality.contamination import Decontaminator, load_eval_tasks
from selfinstruct.quality.judgment import check_choices
from selfinstruct.similarity.tokenize import get_tokenizer

STAGE = "prepare"  # its section
# What a Hub card's header takes as a license or language.
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


@dataclass
class PrepareSettings:
    """Stage 4: filter and format for fine-tuning. It also holds how the judge's verdicts
    filter (min_rating, require_yes, keep_unjudged): prepare applies them, whichever judge
    the run has."""

    max_instances_per_task: int = 5  # instances kept per task (a random sample beyond)
    include_seed_tasks: bool = False  # add the seed tasks' instances to the fine-tuning data
    classification_tasks_only: bool = False  # keep classification tasks only
    # chance an input's field label is dropped (the paper's augmentation)
    field_removal_probability: float = 0.5
    end_of_text: str = "<|endoftext|>"  # appended to every completion
    provenance: bool = False  # exports/ records carry instruction_id, seed_ids, machine_ids
    # The dataset card (exports/README.md); none of these changes the data.
    license: str = "unknown"  # a Hub license identifier: cc-by-4.0, apache-2.0, other...
    language: str = "en"  # the card's language
    dataset_name: str = ""  # the card's pretty_name; empty: the run directory's name
    report: bool = True  # write the run's HTML report (report.html, report.json)
    # the report's verb-noun chart (a spaCy parse of every instruction; the report extra)
    report_verbs: bool = True
    # The judge's verdicts, when a judge is set: the worst rating kept (A best; empty: any)
    # and the questions that must be answered yes (instruction, input, output).
    min_rating: str = "B"
    # with a judge: questions answered yes (instruction, input, output)
    require_yes: list[str] = field(default_factory=list)
    # Instances without a readable judgment (an unparseable answer, or none yet): dropped
    # (judge_unparseable, judge_missing), or kept and counted apart.
    keep_unjudged: bool = False
    # People's reviews (selfinstruct review): drop the instances they rejected (a "no" to a
    # question, or a rating below min_rating), counted as human_rejected.
    drop_human_rejected: bool = True
    # Filter on the judge only when its kappa against people on prepare's keep/drop decision
    # is above this (unset: filter on the judge regardless); prepare refuses otherwise.
    judge_min_kappa: float | None = None
    # Decontamination against evaluation tasks (the paper's user-oriented format; none
    # given: our packaged evaluation tasks): an instruction with ROUGE-L above
    # `decontaminate_rouge` to an evaluation instruction, or an instance sharing
    # `decontaminate_ngram` consecutive words with an evaluation task.
    decontaminate: bool = True
    # evaluation tasks; empty: our packaged ones
    decontaminate_files: list[str] = field(default_factory=list, metadata={"paths": True})
    decontaminate_rouge: float = 0.7  # drop an instruction above this ROUGE-L to an evaluation one
    decontaminate_ngram: int = 13  # drop an instance sharing this many consecutive words with one

    def problems(self) -> Any:
        if self.max_instances_per_task < 1:
            yield "max_instances_per_task", "must be >= 1"
        if not 0.0 <= self.field_removal_probability <= 1.0:
            yield "field_removal_probability", "must be between 0 and 1"
        yield from card_problems(self.license, self.language, self.dataset_name)
        yield from check_choices(self.min_rating, self.require_yes)
        if not 0.0 < self.decontaminate_rouge <= 1.0:
            yield "decontaminate_rouge", "must be above 0 and at most 1"
        if self.judge_min_kappa is not None and not -1.0 <= self.judge_min_kappa < 1.0:
            yield "judge_min_kappa", "must be at least -1 and below 1 (kappa's range)"
        if self.decontaminate_ngram < 1:
            yield "decontaminate_ngram", "must be >= 1"


def card_problems(license: str, language: str, dataset_name: str) -> Iterator[tuple[str, str]]:
    """(setting, message) for card settings the header cannot hold."""
    for key, value in (("license", license), ("language", language)):
        if not IDENTIFIER.fullmatch(value):
            yield key, "must be an identifier such as cc-by-4.0 or en (no spaces)"
    if not dataset_name.isprintable():
        yield "dataset_name", "must be one line of printable text"


def decontaminator_for(config: Config) -> Decontaminator | None:
    """The evaluation tasks to decontaminate against (None: decontamination is off)."""
    settings: PrepareSettings = config.section(STAGE)
    if not settings.decontaminate:
        return None
    tasks = load_eval_tasks([Path(p) for p in settings.decontaminate_files])
    tokenizer = get_tokenizer(config.section("bootstrap").tokenizer)
    return Decontaminator(
        tasks, settings.decontaminate_rouge, settings.decontaminate_ngram, tokenizer
    )


def check_files(config: Config) -> None:
    """The evaluation files decontamination reads exist and are valid (checked up front, so
    a bad one stops a run before it generates anything)."""
    settings: PrepareSettings = config.section(STAGE)
    if settings.decontaminate and settings.decontaminate_files:
        load_eval_tasks([Path(p) for p in settings.decontaminate_files])
