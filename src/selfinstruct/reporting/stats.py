"""Counters for one stage run."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from selfinstruct.store.schema import now


@dataclass
class StageStats:
    stage: str
    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    last_failure: str = ""
    started_at: str = field(default_factory=now)
    _t0: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    def stop(self) -> None:
        self.seconds = time.monotonic() - self._t0

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped[reason] += n

    def as_dict(self) -> dict:
        return {
            "stage": self.stage,
            "requests": self.requests,
            "cached": self.cached,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "kept": self.kept,
            "dropped": {k: v for k, v in sorted(self.dropped.items()) if v},
            "notes": dict(sorted(self.notes.items())),
            "failed": dict(sorted(self.failed.items())),
            "seconds": round(self.seconds, 3),
        }
