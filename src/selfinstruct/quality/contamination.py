"""Decontamination: generated instructions and instances that overlap an evaluation set.

Two checks, each naming the evaluation task it matched:

- instruction: ROUGE-L F-measure (the paper's, with the run's tokenizer) of a generated
  instruction against every distinct evaluation instruction, a match when it is strictly
  above the threshold;
- n-gram: a generated instance whose input or output (each on its own) contains a run of
  `ngram` words (lower-case `\\w+` tokens) found in one field of an evaluation task (its
  instruction, input or reference; n-grams never span two fields).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.analysis.overlap import nearest_seeds
from selfinstruct.evaluation.tasks import EvalTask, default_tasks_path, read_tasks
from selfinstruct.similarity.tokenize import Tokenizer, rouge_tokens

DETAIL_CHARS = 80  # longest evaluation instruction quoted in a Match's detail
_WORD = re.compile(r"\w+")
_INSTANCE_SUFFIX = re.compile(r"#\d+$")


@dataclass(frozen=True)
class Match:
    """One generated item found in the evaluation set."""

    task_id: str  # the evaluation task's id (a multi-instance task's base id, without "#i")
    kind: str  # "instruction" (ROUGE-L) or "ngram"
    detail: str  # "ROUGE-L 0.83 with '...'" or "shares '...'"

    def describe(self) -> str:
        return f"{self.task_id}: {self.detail}"


def load_eval_tasks(paths: Sequence[Path]) -> list[EvalTask]:
    """The evaluation tasks of every file, in order (the packaged ones when `paths` is
    empty). A bad file raises InputError naming its file, line and field."""
    tasks: list[EvalTask] = []
    for path in paths or [default_tasks_path()]:
        tasks += read_tasks(Path(path))
    return tasks


def words(text: str) -> list[str]:
    """The n-gram check's words: lower-case runs of unicode word characters."""
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> Iterator[tuple[str, ...]]:
    """Every run of n consecutive tokens (none when there are fewer than n)."""
    for start in range(len(tokens) - n + 1):
        yield tuple(tokens[start : start + n])


def base_ids(tasks: Sequence[EvalTask]) -> list[str]:
    """Each task's id without read_tasks' "#index" suffix, which it adds only to the
    instances of a task with several: the suffix is dropped when two or more tasks share
    the base id, so a single-instance task whose own id ends in "#3" keeps it."""
    bases = [_INSTANCE_SUFFIX.sub("", task.id) for task in tasks]
    shared = Counter(base for base, task in zip(bases, tasks, strict=True) if base != task.id)
    return [
        base if base != task.id and shared[base] > 1 else task.id
        for base, task in zip(bases, tasks, strict=True)
    ]


def quote(text: str, limit: int = DETAIL_CHARS) -> str:
    """The text on one line, cut to `limit` characters (ending in "..." when cut)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class Decontaminator:
    """Finds generated instructions and instances that overlap the given evaluation tasks."""

    def __init__(
        self,
        tasks: Sequence[EvalTask],
        rouge_threshold: float = 0.7,
        ngram: int = 13,
        tokenizer: Tokenizer = rouge_tokens,
    ) -> None:
        if not 0 < rouge_threshold <= 1:
            raise ValueError(f"rouge_threshold must be in (0, 1], not {rouge_threshold!r}")
        if ngram < 1:
            raise ValueError(f"ngram must be at least 1 word, not {ngram!r}")
        self.rouge_threshold = rouge_threshold
        self.ngram = ngram
        self.tokenizer = tokenizer
        ids = base_ids(tasks)
        self._instructions: list[str] = []  # distinct evaluation instructions, in file order
        self._instruction_ids: list[str] = []
        seen: set[str] = set()
        for task_id, task in zip(ids, tasks, strict=True):
            if task.instruction not in seen:
                seen.add(task.instruction)
                self._instructions.append(task.instruction)
                self._instruction_ids.append(task_id)
        self._ids = ids
        self._ngrams: dict[tuple[str, ...], int] = {}  # n-gram -> index of its first task
        for index, task in enumerate(tasks):
            for text in (task.instruction, task.input, task.reference):
                for gram in ngrams(words(text), ngram):
                    self._ngrams.setdefault(gram, index)

    def instruction_matches(self, instructions: Sequence[str]) -> list[Match | None]:
        """For each instruction, its most similar evaluation instruction when ROUGE-L is
        above the threshold (strictly greater), else None. Ties go to the first task."""
        found = nearest_seeds(instructions, self._instructions, self.tokenizer)
        return [
            self._instruction_match(index, score) if score > self.rouge_threshold else None
            for index, score in found
        ]

    def _instruction_match(self, index: int, score: float) -> Match:
        return Match(
            task_id=self._instruction_ids[index],
            kind="instruction",
            detail=f"ROUGE-L {score:.2f} with '{quote(self._instructions[index])}'",
        )

    def instance_match(self, input: str, output: str) -> Match | None:
        """The first evaluation task (in file order) sharing an n-gram of `ngram` words with
        the instance's input or output, else None. The shared words quoted are the first of
        that task's n-grams met in the input, then the output."""
        best: tuple[int, tuple[str, ...]] | None = None
        for text in (input, output):
            for gram in ngrams(words(text), self.ngram):
                index = self._ngrams.get(gram)
                if index is not None and (best is None or index < best[0]):
                    best = (index, gram)
        if best is None:
            return None
        index, gram = best
        return Match(task_id=self._ids[index], kind="ngram", detail=f"shares '{' '.join(gram)}'")
