"""Summary statistics of an evaluation: mean ROUGE-L, rating distributions, and pairwise win
rates with bootstrap confidence intervals."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from selfinstruct.paper import RATINGS

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class ModelSummary:
    label: str
    answered: int
    failed: int
    rouge_l: float
    ratings: dict[str, int]  # A/B/C/D plus "unparsed"; empty when there was no judge


@dataclass(frozen=True)
class PairSummary:
    first: str
    second: str
    wins: int
    losses: int
    ties: int
    unparsed: int
    win_rate: float  # (wins + ties / 2) / decided, for the first model
    low: float
    high: float


def model_summary(
    label: str, rouge: Sequence[float | None], ratings: Sequence[str | None] | None
) -> ModelSummary:
    scores = [r for r in rouge if r is not None]
    counted: dict[str, int] = {}
    if ratings is not None:
        counts = Counter(r if r in RATINGS else "unparsed" for r in ratings)
        counted = {k: counts.get(k, 0) for k in (*RATINGS, "unparsed")}
    return ModelSummary(
        label,
        len(scores),
        len(rouge) - len(scores),
        sum(scores) / len(scores) if scores else 0.0,
        counted,
    )


def pair_summary(
    first: str, second: str, outcomes: Sequence[str | None], seed: int = 0
) -> PairSummary:
    """outcomes per task: "1" (first wins), "2", "tie", or None (unparsed, left out)."""
    points = [{"1": 1.0, "2": 0.0, "tie": 0.5}[o] for o in outcomes if o is not None]
    rate = sum(points) / len(points) if points else 0.0
    low, high = bootstrap_interval(points, seed)
    return PairSummary(
        first,
        second,
        outcomes.count("1"),
        outcomes.count("2"),
        outcomes.count("tie"),
        outcomes.count(None),
        rate,
        low,
        high,
    )


def bootstrap_interval(points: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (deterministic for a given seed)."""
    if not points:
        return 0.0, 0.0
    rng = random.Random(seed)
    n = len(points)
    means = sorted(sum(rng.choices(points, k=n)) / n for _ in range(BOOTSTRAP_SAMPLES))
    tail = (1 - CONFIDENCE) / 2
    return means[int(tail * BOOTSTRAP_SAMPLES)], means[int((1 - tail) * BOOTSTRAP_SAMPLES) - 1]


def format_table(models: Sequence[ModelSummary], pairs: Sequence[PairSummary]) -> str:
    judged = any(m.ratings for m in models)
    header = "| model | answered | failed | ROUGE-L |"
    rule = "|---|---|---|---|"
    if judged:
        header += " A | B | C | D | unparsed | A+B |"
        rule += "---|---|---|---|---|---|"
    lines = [header, rule]
    for m in models:
        row = f"| {m.label} | {m.answered} | {m.failed} | {m.rouge_l:.3f} |"
        if judged:
            total = sum(m.ratings.values()) or 1
            row += "".join(f" {m.ratings.get(k, 0)} |" for k in (*RATINGS, "unparsed"))
            row += f" {(m.ratings.get('A', 0) + m.ratings.get('B', 0)) / total:.0%} |"
        lines.append(row)
    if pairs:
        lines += [
            "",
            "| pair | wins | losses | ties | unparsed | win rate (ties = 1/2) | "
            f"{CONFIDENCE:.0%} CI |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in pairs:
            decided = p.wins + p.losses + p.ties
            rate = f"{p.win_rate:.1%} | {p.low:.1%} - {p.high:.1%}" if decided else "n/a | n/a"
            lines.append(
                f"| {p.first} vs {p.second} | {p.wins} | {p.losses} | {p.ties} | "
                f"{p.unparsed} | {rate} |"
            )
    return "\n".join(lines)
