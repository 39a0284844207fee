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

from selfinstruct.paper import ALL_THREE, QUESTIONS, RATINGS, TABLE2, table2_figure
from selfinstruct.quality.agreement import EMPTY_CELL, Share

ROWS = (*QUESTIONS, ALL_THREE, *(f"rating {rating}" for rating in RATINGS))
GROUPS = ("all", "classification", "non-classification")

ROW_LABELS = {
    "instruction": "valid instruction",
    "input": "appropriate input",
    "output": "correct output",
    ALL_THREE: "all three",
}


@dataclass(frozen=True)
class Judged:
    """A judge's review of one generated item."""

    is_classification: bool
    answers: Mapping[str, bool]  # one bool per QUESTIONS key (True = yes)
    rating: str  # one of RATINGS


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
            "paper": dict(TABLE2),
        }

    def format(self) -> str:
        """A plain-text table: rows x groups, then the paper's number for the first four rows."""
        header = ["", *GROUPS, "paper"]
        body = [self._row_cells(row) for row in ROWS]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
        title = "Table 2: quality of generated data (judge); paper: " + ", ".join(
            f"{table2_figure(row)} {ROW_LABELS[row]}" for row in TABLE2
        )
        lines = [title, _join(header, widths), _join(["-" * w for w in widths], widths)]
        lines += [_join(cells, widths) for cells in body]
        lines.append(f"unparseable judge answers (left out): {self.unparseable}")
        return "\n".join(lines)

    def _row_cells(self, row: str) -> list[str]:
        paper = TABLE2.get(row)
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


# The rows of a Table 2 in markdown (the dataset card), with their labels there.
MARKDOWN_ROWS = (
    ("instruction", "valid instruction"),
    ("input", "appropriate input"),
    ("output", "correct output"),
    (ALL_THREE, "all three valid"),
    *((f"rating {rating}", f"rating {rating}") for rating in RATINGS),
)


def table2_markdown(found: Mapping[str, Any]) -> str:
    """A Table 2 (as `QualityTable.as_dict` gives it) as a markdown table beside the paper's
    figures, with a note on unreadable answers."""
    groups = found["groups"]
    rows = [
        "| | all | classification | non-classification | the paper |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, label in MARKDOWN_ROWS:
        cells = [_markdown_cell(groups[group][key]) for group in GROUPS]
        rows.append(f"| {label} | {' | '.join(cells)} | {table2_figure(key)} |")
    if found["unparseable"]:
        rows.append(f"\n{found['unparseable']:,} judge answers could not be read; left out.")
    return "\n".join(rows)


def _markdown_cell(share: Mapping[str, Any]) -> str:
    if not share["n"]:
        return EMPTY_CELL
    return f"{share['percent']:.1f}% [{share['low']:.1f}, {share['high']:.1f}] (n={share['n']:,})"
