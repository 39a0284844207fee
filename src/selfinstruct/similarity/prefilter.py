"""Which candidates of a block the bounded search should try to reject before block scoring.

`RougePool.above` settles a candidate that some pool item already beats, touching only the
few items the exact bounds leave possible; a candidate it cannot settle still needs its full
row, so the search only pays when rejections are frequent. The prefilter keeps running
estimates of the rejection rate and of both costs per pool item (measured, so they follow the
machine) and searches while rate x row cost >= MARGIN x search cost, and every EXPLORE-th
candidate so the search cost stays current as the pool grows. Either way every decision is
exact: the search only ever reports a real pool item above the threshold, and everything else
is decided on full scores. Only the speed depends on the choice.
"""

from __future__ import annotations

import time
from typing import Literal

from selfinstruct.similarity.rouge import Block, RougePool

Mode = Literal["auto", "always", "never"]
SMOOTHING = 0.02  # weight of the newest observation in the running estimates
EXPLORE = 32  # search at least one candidate in this many, to keep its cost current
MARGIN = 1.5  # expected saving must beat the search cost by this factor (it also costs cache)


class Prefilter:
    def __init__(self, pool: RougePool, threshold: float, mode: Mode = "auto") -> None:
        self.pool = pool
        self.threshold = threshold
        self.mode = mode
        self.reject_rate = 1.0  # search until the estimates say otherwise
        self.search_cost = 0.0  # seconds per search
        self.row_cost = 0.0  # seconds per pool item of one block row
        self.considered = 0
        self.searched = 0
        self.settled = 0

    def settle(self, encoded: list[str]) -> set[int]:
        """Indices of the candidates the search proves above the threshold against the pool
        as it stands (so also at their turn: the pool only grows)."""
        found: set[int] = set()
        for index, text in enumerate(encoded):
            if not self._worth_searching():
                continue
            started = time.perf_counter()
            if self.pool.above(text, self.threshold):
                found.add(index)
            self._update("search_cost", time.perf_counter() - started)
            self.searched += 1
        self.settled += len(found)
        return found

    def block(self, encoded: list[str]) -> Block:
        """Score the unsettled candidates against the pool in one call, timed."""
        started = time.perf_counter()
        block = self.pool.block(encoded)
        pairs = len(encoded) * block.start
        if pairs:
            self._update("row_cost", (time.perf_counter() - started) / pairs)
        return block

    def judged(self, rejected: bool) -> None:
        """Record a decision made on similarity (settled or scored): the rejection rate."""
        self._update("reject_rate", 1.0 if rejected else 0.0)

    def _worth_searching(self) -> bool:
        if self.mode != "auto":
            return self.mode == "always"
        self.considered += 1
        if not self.row_cost or not self.search_cost or self.considered % EXPLORE == 0:
            return True
        return self.reject_rate * self.row_cost * len(self.pool) >= MARGIN * self.search_cost

    def _update(self, name: str, value: float) -> None:
        current = getattr(self, name)
        setattr(
            self,
            name,
            value
            if not current and name != "reject_rate"
            else current + SMOOTHING * (value - current),
        )
