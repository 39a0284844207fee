"""A progress bar with kept/dropped counts, requests, tokens, rate and ETA (on stderr).

The bar counts the stage's records (bootstrap: accepted instructions). Requests and tokens are
shown as each answer arrives, so a stage whose first records take minutes (a local model
writing long bootstrap answers) visibly works. The rate and ETA are averages over the whole
stage, not a moving average that one slow first record would inflate."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from selfinstruct.console.stats import StageStats

REFRESH_SECONDS = 0.25


def short_count(n: int) -> str:
    """12345 -> "12.3k"."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


# Closed bars are kept until the process ends. Otherwise tqdm's finalizer runs when a stage's
# bar is collected, and a Ctrl-C that arrives inside a finalizer is ignored by Python: the
# command would go on as if the user had not pressed it.
_CLOSED: list[tqdm] = []


class Progress:
    def __init__(self, stats: StageStats, total: int, initial: int, *, quiet: bool) -> None:
        self.stats = stats
        self._shown = 0.0
        self._bar = tqdm(
            total=total,
            initial=initial,
            desc=f"{stats.stage:>9}",
            unit="rec",
            file=sys.stderr,
            disable=quiet,
            dynamic_ncols=True,
            leave=True,
            smoothing=0,
            bar_format="{desc}: {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} "
            "[{elapsed}<{remaining}, {rate_fmt}{postfix}]",
        )

    def _postfix(self) -> str:
        s = self.stats
        requests = s.requests + s.cached
        return (
            f"{s.verb}={s.kept} dropped={s.dropped_total} requests={requests} "
            f"tokens={short_count(s.tokens)}"
        )

    def show_counts(self) -> None:
        """Refresh the counts (an answer arrived) without advancing the bar; at most a few
        times a second."""
        if self._bar.disable:
            return
        now = time.monotonic()
        if now - self._shown >= REFRESH_SECONDS:
            self._shown = now
            self._bar.set_postfix_str(self._postfix(), refresh=True)

    def advance(self, n: int = 1) -> None:
        if self._bar.disable:  # --quiet: nothing to show (called per record)
            return
        self._bar.set_postfix_str(self._postfix(), refresh=False)
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()
        _CLOSED.append(self._bar)
