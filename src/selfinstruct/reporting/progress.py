"""A progress bar with kept/dropped counts, rate and ETA (on stderr)."""

from __future__ import annotations

import sys

from tqdm import tqdm

from selfinstruct.reporting.stats import StageStats


class Progress:
    def __init__(self, stats: StageStats, total: int, initial: int, *, quiet: bool) -> None:
        self.stats = stats
        self._bar = tqdm(
            total=total, initial=initial, desc=f"{stats.stage:>9}", unit="rec",
            file=sys.stderr, disable=quiet, dynamic_ncols=True, leave=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} "
                       "[{elapsed}<{remaining}, {rate_fmt}] {postfix}",
        )

    def advance(self, n: int = 1) -> None:
        self._bar.set_postfix_str(
            f"kept={self.stats.kept} dropped={self.stats.dropped_total} "
            f"tokens={self.stats.prompt_tokens + self.stats.completion_tokens}", refresh=False)
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()
