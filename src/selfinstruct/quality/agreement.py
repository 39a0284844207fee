"""Agreement of a judge with human labels, for calibrating the judge.

Definitions (so the numbers can be recomputed by hand):
- a binary label is True for accepted ("yes") and False for rejected ("no");
- accuracy: the share of pairs where judge and human give the same label;
- reject precision: of the items the judge rejected, the share humans rejected too;
- reject recall: of the items humans rejected, the share the judge rejected too;
- Cohen's kappa: (p_o - p_e) / (1 - p_e), with p_o the observed agreement and p_e the
  agreement expected by chance from each rater's marginal shares;
- Wilson score interval: the usual score interval for a binomial proportion.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

Z_95 = 1.959964


@dataclass(frozen=True)
class Agreement:
    """How well a judge's yes/no labels match human ones."""

    n: int
    accuracy: float
    reject_precision: float | None  # None when the judge rejected none
    reject_recall: float | None  # None when humans rejected none
    kappa: float | None  # None when undefined (n == 0)

    def as_dict(self) -> dict[str, float | int | None]:
        """The fields, floats rounded to 4 decimals."""
        return {
            "n": self.n,
            "accuracy": _round(self.accuracy) if self.n else None,
            "reject_precision": _round(self.reject_precision),
            "reject_recall": _round(self.reject_recall),
            "kappa": _round(self.kappa),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _check_lengths(truth: Sequence[object], judged: Sequence[object]) -> None:
    if len(truth) != len(judged):
        raise ValueError(f"lengths differ: {len(truth)} human labels, {len(judged)} judged")


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def binary_agreement(truth: Sequence[bool], judged: Sequence[bool]) -> Agreement:
    """Agreement of `judged` with `truth`, pair by pair.

    True = accepted ("yes"), False = rejected ("no"). With no pairs, accuracy is 0.0 and the
    other rates are None. Raises ValueError when the lengths differ.
    """
    _check_lengths(truth, judged)
    pairs = list(zip(truth, judged, strict=True))
    both_reject = sum(1 for human, judge in pairs if not human and not judge)
    judge_rejects = sum(1 for _, judge in pairs if not judge)
    human_rejects = sum(1 for human, _ in pairs if not human)
    agree = sum(1 for human, judge in pairs if human == judge)
    return Agreement(
        n=len(pairs),
        accuracy=agree / len(pairs) if pairs else 0.0,
        reject_precision=_ratio(both_reject, judge_rejects),
        reject_recall=_ratio(both_reject, human_rejects),
        kappa=cohen_kappa(truth, judged),
    )


def cohen_kappa(truth: Sequence[Hashable], judged: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters over any categories (yes/no, the A/B/C/D rating, ...).

    kappa = (p_o - p_e) / (1 - p_e). None when there are no pairs, and when p_e == 1 (both
    raters use one and the same single category throughout: 0/0, and agreement that says
    nothing about the judge, who may say the same for everything). Raises ValueError when the
    lengths differ.
    """
    _check_lengths(truth, judged)
    n = len(truth)
    if n == 0:
        return None
    observed = sum(1 for a, b in zip(truth, judged, strict=True) if a == b) / n
    expected = _chance_agreement(truth, judged)
    if math.isclose(expected, 1.0):
        return None
    return (observed - expected) / (1.0 - expected)


def _chance_agreement(truth: Sequence[Hashable], judged: Sequence[Hashable]) -> float:
    """p_e: the sum over categories of the product of the two raters' marginal shares."""
    n = len(truth)
    truth_counts = Counter(truth)
    judged_counts = Counter(judged)
    return sum(count * judged_counts[cat] for cat, count in truth_counts.items()) / (n * n)


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """95% (by default) Wilson score interval for the proportion k/n; (0.0, 1.0) when n == 0.

    Raises ValueError unless 0 <= k <= n.
    """
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    low = 0.0 if k == 0 else max(0.0, centre - half)  # exact bounds at the edges: no float drift
    high = 1.0 if k == n else min(1.0, centre + half)
    return (low, high)


EMPTY_CELL = "–"  # a share of nothing, in a table


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
