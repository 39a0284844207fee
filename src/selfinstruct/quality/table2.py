"""The paper's Table 2 (quality review of generated data) for one run, from a judge's answers.

Definitions (so the numbers can be recomputed from the judge's answers):
- each judged item answers three yes/no questions (QUESTIONS): is the instruction a valid
  task, is the input appropriate for it, is the output a correct and acceptable response;
- "all three": the items with every answer yes;
- "rating A" ... "rating D": the share of items given that overall rating, so the four
  ratings of a group add up to 100%;
- groups: "all" items, and the items split by their classification label;
- every share comes with a 95% Wilson score interval; answers that could not be read
  (`unparseable`) are kept out of every denominator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from selfinstruct.quality.agreement import wilson_interval
from selfinstruct.quality.judgment import QUESTIONS, RATINGS

ALL_THREE = "all three"
ROWS = (*QUESTIONS, ALL_THREE, *(f"rating {rating}" for rating in RATINGS))
GROUPS = ("all", "classification", "non-classification")

PAPER_TABLE2 = {"instruction": 92.0, "input": 79.0, "output": 58.0, "all three": 54.0}

ROW_LABELS = {
    "instruction": "valid instruction",
    "input": "appropriate input",
    "output": "correct output",
    ALL_THREE: "all three",
}
EMPTY_CELL = "–"


@dataclass(frozen=True)
class Judged:
    """A judge's review of one generated item."""

    is_classification: bool
    answers: Mapping[str, bool]  # one bool per QUESTIONS key (True = yes)
    rating: str  # one of RATINGS


@dataclass(frozen=True)
class Share:
    """`yes` of `n` items."""

    yes: int
    n: int

    @property
    def percent(self) -> float | None:
        """100 * yes / n; None when n == 0."""
        return 100.0 * self.yes / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        """The 95% Wilson score interval in percent; None when n == 0."""
        if not self.n:
            return None
        low, high = wilson_interval(self.yes, self.n)
        return (100.0 * low, 100.0 * high)

    def as_dict(self) -> dict[str, int | float | None]:
        """Counts, percent and interval bounds (rounded to 1 decimal; None when n == 0)."""
        percent, interval = self.percent, self.interval
        return {
            "yes": self.yes,
            "n": self.n,
            "percent": None if percent is None else round(percent, 1),
            "low": None if interval is None else round(interval[0], 1),
            "high": None if interval is None else round(interval[1], 1),
        }

    def cell(self) -> str:
        """'92.0% [89.1, 94.3] (n=250)'; '–' when n == 0."""
        percent, interval = self.percent, self.interval
        if percent is None or interval is None:
            return EMPTY_CELL
        return f"{percent:.1f}% [{interval[0]:.1f}, {interval[1]:.1f}] (n={self.n})"


@dataclass(frozen=True)
class QualityTable:
    """Table 2 for a run: group name -> row name -> Share."""

    groups: dict[str, dict[str, Share]]
    unparseable: int

    def as_dict(self) -> dict[str, Any]:
        """Plain data: the shares by group and row, the unparseable count, the paper's numbers."""
        return {
            "groups": {
                group: {row: share.as_dict() for row, share in rows.items()}
                for group, rows in self.groups.items()
            },
            "unparseable": self.unparseable,
            "paper": dict(PAPER_TABLE2),
        }

    def format(self) -> str:
        """A plain-text table: rows x groups, then the paper's number for the first four rows."""
        header = ["", *GROUPS, "paper"]
        body = [self._row_cells(row) for row in ROWS]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
        title = (
            "Table 2: quality of generated data (judge); paper: 92% valid instruction, "
            "79% appropriate input, 58% correct output, 54% all three"
        )
        lines = [title, _join(header, widths), _join(["-" * w for w in widths], widths)]
        lines += [_join(cells, widths) for cells in body]
        lines.append(f"unparseable judge answers (left out): {self.unparseable}")
        return "\n".join(lines)

    def _row_cells(self, row: str) -> list[str]:
        paper = PAPER_TABLE2.get(row)
        return [
            ROW_LABELS.get(row, row),
            *(self.groups[group][row].cell() for group in GROUPS),
            "" if paper is None else f"{paper:.0f}%",
        ]


def _join(cells: Sequence[str], widths: Sequence[int]) -> str:
    first = cells[0].ljust(widths[0])
    rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
    return "  ".join([first, *rest]).rstrip()


def _check(item: Judged) -> None:
    missing = [question for question in QUESTIONS if question not in item.answers]
    if missing:
        raise ValueError(f"judged item lacks answers to {missing}")
    if item.rating not in RATINGS:
        raise ValueError(f"rating {item.rating!r} is not one of {RATINGS}")


def _shares(items: Sequence[Judged]) -> dict[str, Share]:
    n = len(items)
    rows = {q: Share(sum(1 for it in items if it.answers[q]), n) for q in QUESTIONS}
    rows[ALL_THREE] = Share(sum(1 for it in items if all(it.answers[q] for q in QUESTIONS)), n)
    for rating in RATINGS:
        rows[f"rating {rating}"] = Share(sum(1 for it in items if it.rating == rating), n)
    return rows


def quality_table(judged: Iterable[Judged], unparseable: int = 0) -> QualityTable:
    """Table 2 from the judge's readable answers; `unparseable` counts the unreadable ones.

    Every group is present, even empty. Raises ValueError for an item missing an answer or
    with a rating outside RATINGS.
    """
    items = list(judged)
    for item in items:
        _check(item)
    members = {
        "all": items,
        "classification": [item for item in items if item.is_classification],
        "non-classification": [item for item in items if not item.is_classification],
    }
    return QualityTable(
        groups={group: _shares(members[group]) for group in GROUPS},
        unparseable=unparseable,
    )
