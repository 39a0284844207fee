"""Counters for one stage run.

`kept` and `dropped` count the stage's own unit (`unit`: instructions, instances...). Losses
counted in another unit (bootstrap's responses, prepare's tasks) go to `lost[unit]`, so no
count ever adds tasks to instances."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct.store.schema import now


@dataclass
class StageStats:
    stage: str
    unit: str = "records"
    verb: str = "kept"  # what `kept` counts: kept, labelled, answered
    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    lost: dict[str, Counter[str]] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    last_failure: str = ""
    outputs: list[Path] = field(default_factory=list)  # files the stage wrote
    started_at: str = field(default_factory=now)
    _t0: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    _stopped: bool = False

    def stop(self) -> None:
        """The stage's time ends here (the first call: a stage of a stream stops when it is
        done, before the stream ends)."""
        if not self._stopped:
            self._stopped = True
            self.seconds = time.monotonic() - self._t0

    @property
    def clock(self) -> tuple[float, float]:
        """When it started and ended on the monotonic clock (its end once stopped)."""
        return self._t0, self._t0 + self.seconds

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped[reason] += n

    def lose(self, unit: str, reason: str, n: int = 1) -> None:
        """Count n losses of another unit than the stage's own (e.g. tasks in prepare)."""
        if n:
            self.lost.setdefault(unit, Counter())[reason] += n

    def as_dict(self) -> dict:
        return {
            "stage": self.stage,
            "unit": self.unit,
            "requests": self.requests,
            "cached": self.cached,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "kept": self.kept,
            "dropped": {k: v for k, v in sorted(self.dropped.items()) if v},
            "lost": {
                unit: {k: v for k, v in sorted(c.items()) if v}
                for unit, c in sorted(self.lost.items())
                if sum(c.values())
            },
            "notes": dict(sorted(self.notes.items())),
            "failed": dict(sorted(self.failed.items())),
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 3),
        }
