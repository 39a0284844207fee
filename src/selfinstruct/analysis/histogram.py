"""Histograms with fixed, documented bins, so two runs' charts line up and the counts can
be recomputed: a value v falls in bin i when edges[i] <= v < edges[i + 1]; the last bin also
takes everything at or above its lower edge (an open-ended "60+" bin)."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# ROUGE-L in steps of 0.05 from 0 to 1 (the paper's Figure 3); the last bin holds exactly 1.0.
SCORE_EDGES = [round(i * 0.05, 2) for i in range(21)]
# Words: the paper's Figure 4 ranges, in bins of 2 (instructions, inputs) or 5 (outputs).
INSTRUCTION_EDGES = list(range(0, 62, 2))
INPUT_EDGES = list(range(0, 62, 2))
OUTPUT_EDGES = list(range(0, 155, 5))


@dataclass(frozen=True)
class Histogram:
    edges: list[float]  # lower edges; the last bin is open-ended
    counts: list[int]
    total: int
    mean: float
    median: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def histogram(values: Iterable[float], edges: Sequence[float]) -> Histogram:
    data = sorted(values)
    counts = [0] * len(edges)
    for value in data:
        counts[max(0, bisect.bisect_right(edges, value) - 1)] += 1
    return Histogram(list(edges), counts, len(data), _mean(data), _median(data))


def _mean(data: list[float]) -> float:
    return round(sum(data) / len(data), 4) if data else 0.0


def _median(data: list[float]) -> float:
    if not data:
        return 0.0
    mid = len(data) // 2
    return round(data[mid] if len(data) % 2 else (data[mid - 1] + data[mid]) / 2, 4)
