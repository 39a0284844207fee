"""The report's funnel: per stage, what was kept and what was dropped by reason, each reason
with a few real examples (drawn with a fixed seed, so the report is reproducible)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

EXAMPLES = 3
EXCERPT = 400  # characters of a long example shown


@dataclass
class Step:
    stage: str
    unit: str
    kept: int
    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: Step | None = None  # records kept but worth a look (counted in `kept`)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "unit": self.unit,
            "kept": self.kept,
            "dropped": self.reasons(),
            "notes": self.notes.reasons() if self.notes else [],
        }

    def reasons(self) -> list[dict[str, Any]]:
        return [
            {"reason": r, "count": n, "examples": self.examples.get(r, [])}
            for r, n in sorted(self.dropped.items(), key=lambda kv: (-kv[1], kv[0]))
        ]


def excerpt(text: str, limit: int = EXCERPT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def step(stage: str, unit: str, kept: int, drops: Sequence[tuple[str, str]]) -> Step:
    """A funnel step from (reason, example text) for every dropped record."""
    by_reason: dict[str, list[str]] = defaultdict(list)
    for reason, text in drops:
        by_reason[reason].append(text)
    rng = random.Random(f"report:{stage}:{unit}")
    return Step(
        stage,
        unit,
        kept,
        {reason: len(texts) for reason, texts in by_reason.items()},
        {
            reason: [excerpt(t) for t in _sample(rng, texts)]
            for reason, texts in sorted(by_reason.items())
        },
    )


def _sample(rng: random.Random, texts: list[str]) -> list[str]:
    if len(texts) <= EXAMPLES:
        return texts
    return [texts[i] for i in sorted(rng.sample(range(len(texts)), EXAMPLES))]
