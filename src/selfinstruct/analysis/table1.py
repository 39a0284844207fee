"""The paper's Table 1 for one run.

Definitions (so the numbers can be recomputed from the run's files):
- instructions: every generated instruction (machine_generated_instructions.jsonl);
- classification / non-classification: their labels (is_clf_or_not_*.jsonl); instructions not
  labelled yet are counted apart;
- instances and everything about them: the instances prepare keeps
  (finetuning_data/all_generated_instances.jsonl);
- words: whitespace-separated tokens; an average over no text is 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Table1:
    instructions: int
    classification: int
    non_classification: int
    unlabelled: int
    instances: int
    empty_input: int
    avg_instruction_words: float
    avg_input_words: float  # over non-empty inputs
    avg_output_words: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def words(text: str) -> int:
    return len(text.split())


def mean_words(texts: Iterable[str]) -> float:
    counts = [words(text) for text in texts]
    return round(sum(counts) / len(counts), 2) if counts else 0.0


def table1(
    instructions: Sequence[str],
    labels: Sequence[bool | None],
    instances: Sequence[tuple[str, str]],
) -> Table1:
    """`labels[i]` is instruction i's label (None: not labelled yet); `instances` are the
    kept (input, output) pairs."""
    inputs = [inp for inp, _ in instances if inp.strip()]
    return Table1(
        instructions=len(instructions),
        classification=sum(1 for label in labels if label is True),
        non_classification=sum(1 for label in labels if label is False),
        unlabelled=sum(1 for label in labels if label is None),
        instances=len(instances),
        empty_input=len(instances) - len(inputs),
        avg_instruction_words=mean_words(instructions),
        avg_input_words=mean_words(inputs),
        avg_output_words=mean_words(out for _, out in instances),
    )
