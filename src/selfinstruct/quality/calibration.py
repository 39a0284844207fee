"""Calibrating a judge: run it on human-labelled instances and measure how well it agrees,
per question (accuracy, precision and recall of rejects, Cohen's kappa), on "all three", and
on the rating (exact agreement and kappa over A/B/C/D; A/B against C/D as accept/reject).

The labelled file is JSON Lines, one instance per line: `id`, `instruction`, `input`,
`output`, `labels` ({"instruction": "yes"|"no", "input": ..., "output": ...}), `rating`
(A-D); optional `is_classification`, `flaw` and `note`. Our packaged file
(`data/judge_calibration.jsonl`, 130 instances written for this project, half of them
flawed in the ways the paper lists) is what `--calibrate packaged` reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from selfinstruct.errors import InputError
from selfinstruct.io.jsonl import json_objects, string_field
from selfinstruct.io.text import read_text
from selfinstruct.paper import QUESTIONS, RATINGS
from selfinstruct.quality.agreement import Agreement, binary_agreement, cohen_kappa
from selfinstruct.quality.judgment import Judgment

PACKAGED = "packaged"
ACCEPTED_RATINGS = ("A", "B")


@dataclass(frozen=True)
class Labelled:
    """One human-labelled instance."""

    id: str
    instruction: str
    input: str
    output: str
    answers: dict[str, bool]  # by QUESTIONS
    rating: str
    flaw: str = ""


def packaged_path() -> Path:
    return Path(str(resources.files("selfinstruct") / "data" / "judge_calibration.jsonl"))


def read_labelled(path: Path) -> list[Labelled]:
    """A labelled file, every field checked (errors name the file, line and field)."""
    items: list[Labelled] = []
    seen: set[str] = set()
    for line, obj in json_objects(read_text(path), path):
        item_id = string_field(obj, "id", path, line=line)
        if item_id in seen:
            raise InputError(path, f"duplicate id '{item_id}'", line=line, field="id")
        seen.add(item_id)
        items.append(_item(obj, item_id, path, line))
    if not items:
        raise InputError(path, "no labelled instances found")
    return items


def _item(obj: dict[str, Any], item_id: str, path: Path, line: int) -> Labelled:
    labels = obj.get("labels")
    if not isinstance(labels, dict):
        raise InputError(path, "expected an object of yes/no answers", line=line, field="labels")
    answers = {}
    for question in QUESTIONS:
        value = labels.get(question)
        if value not in ("yes", "no"):
            raise InputError(
                path,
                f'expected "yes" or "no", got {value!r}',
                line=line,
                field=f"labels.{question}",
            )
        answers[question] = value == "yes"
    rating = obj.get("rating")
    if rating not in RATINGS:
        raise InputError(path, f"expected one of {', '.join(RATINGS)}", line=line, field="rating")
    return Labelled(
        id=item_id,
        instruction=string_field(obj, "instruction", path, line=line),
        input=string_field(obj, "input", path, line=line, default=""),
        output=string_field(obj, "output", path, line=line),
        answers=answers,
        rating=rating,
        flaw=string_field(obj, "flaw", path, line=line, default=""),
    )


@dataclass(frozen=True)
class CalibrationResult:
    """The judge's agreement with the labels. `unparseable`: answers that could not be read
    (left out of every number, and counted); `failed`: requests that got no answer."""

    judge: str
    items: int
    compared: int
    unparseable: int
    failed: int
    questions: dict[str, Agreement]  # the three questions and "all three"
    rating_exact: float | None
    rating_kappa: float | None
    rating_accept: Agreement  # A/B as accept, C/D as reject

    def as_dict(self) -> dict[str, Any]:
        return {
            "judge": self.judge,
            "items": self.items,
            "compared": self.compared,
            "unparseable": self.unparseable,
            "failed": self.failed,
            "questions": {name: found.as_dict() for name, found in self.questions.items()},
            "rating": {
                "exact_agreement": _round(self.rating_exact),
                "kappa": _round(self.rating_kappa),
                "accept_A_B": self.rating_accept.as_dict(),
            },
        }

    def format(self) -> str:
        head = (
            f"{'':<18} {'n':>4} {'accuracy':>9} {'reject prec.':>12} {'reject rec.':>11} "
            f"{'kappa':>6}"
        )
        lines = [
            f"Judge {self.judge} on {self.items} labelled instances: {self.compared} compared, "
            f"{self.unparseable} unparseable, {self.failed} failed",
            head,
        ]
        rows = {**self.questions, "rating A/B vs C/D": self.rating_accept}
        for name, found in rows.items():
            lines.append(
                f"{name:<18} {found.n:>4} {_accuracy(found):>9} "
                f"{_pct(found.reject_precision):>12} {_pct(found.reject_recall):>11} "
                f"{_num(found.kappa):>6}"
            )
        lines.append(
            f"rating A-D: exact agreement {_pct(self.rating_exact)}, "
            f"kappa {_num(self.rating_kappa)}"
        )
        return "\n".join(lines)


def agreement(
    judge: str, items: Sequence[Labelled], judgments: Sequence[Judgment | None]
) -> CalibrationResult:
    """Compare judgments (None: the request failed) with the labels, item by item."""
    pairs = [(item, j) for item, j in zip(items, judgments, strict=True) if j is not None]
    readable = [(item, j) for item, j in pairs if j.readable]
    questions = {
        q: binary_agreement(
            [item.answers[q] for item, _ in readable], [bool(j.answers[q]) for _, j in readable]
        )
        for q in QUESTIONS
    }
    questions["all three"] = binary_agreement(
        [all(item.answers.values()) for item, _ in readable], [j.all_yes for _, j in readable]
    )
    truth = [item.rating for item, _ in readable]
    given = [j.rating or "" for _, j in readable]
    exact = sum(a == b for a, b in zip(truth, given, strict=True)) / len(truth) if truth else None
    return CalibrationResult(
        judge=judge,
        items=len(items),
        compared=len(readable),
        unparseable=len(pairs) - len(readable),
        failed=len(items) - len(pairs),
        questions=questions,
        rating_exact=exact,
        rating_kappa=cohen_kappa(truth, given) if truth else None,
        rating_accept=binary_agreement(
            [r in ACCEPTED_RATINGS for r in truth], [r in ACCEPTED_RATINGS for r in given]
        ),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _accuracy(found: Agreement) -> str:
    return _pct(found.accuracy) if found.n else "–"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
