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


def _bar(
    desc: str, total: int | None, initial: int, quiet: bool, *, hide_done: bool = True
) -> tqdm:
    """A stage's bar; none for a stage whose records are all there already (`hide_done`: it
    has nothing to show, and a full bar would read as work done)."""
    done = hide_done and bool(total) and initial >= (total or 0)
    return tqdm(
        total=total,
        initial=initial,
        desc=f"{desc:>9}",
        unit="rec",
        file=sys.stderr,
        disable=quiet or done,
        dynamic_ncols=True,
        leave=True,
        smoothing=0,
        bar_format="{desc}: {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} "
        "[{elapsed}<{remaining}, {rate_fmt}{postfix}]",
    )


class StreamBar:
    """One bar for the stages of a stream (engine/stream.py): it counts the records of the
    stages that count instructions (bootstrap's, classify's, instances'...) against all their
    totals, and its counts name each stage; it closes with the last stage's progress. It is
    shown from the first answer on: a stream of stages that all had their records already
    shows none."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.stages: list[Progress] = []
        self.open = 0
        self.total = 0
        self.initial = 0
        self._bar: tqdm | None = None

    @property
    def bar(self) -> tqdm:
        if self._bar is None:
            # made at the first answer: a stage that counts no instructions may be at work
            self._bar = _bar("stream", self.total, self.initial, self.quiet, hide_done=False)
        return self._bar

    def join(self, progress: Progress, total: int | None, initial: int) -> None:
        self.stages.append(progress)
        self.open += 1
        if total is not None:
            self.total += total
            self.initial += initial

    def postfix(self) -> str:
        counts = " ".join(f"{p.stats.stage}={p.stats.kept}" for p in self.stages)
        requests = sum(p.stats.requests + p.stats.cached for p in self.stages)
        tokens = sum(p.stats.tokens for p in self.stages)
        return f"{counts} requests={requests} tokens={short_count(tokens)}"

    def leave(self) -> None:
        self.open -= 1
        if not self.open and self._bar is not None:
            self._bar.close()
            _CLOSED.append(self._bar)


class Progress:
    """A stage's progress: its own bar, or its share of a stream's (`stream`; records of a
    stage that counts another unit than instructions, `total` None, show in its counts)."""

    def __init__(
        self,
        stats: StageStats,
        total: int | None,
        initial: int,
        *,
        quiet: bool,
        stream: StreamBar | None = None,
    ) -> None:
        self.stats = stats
        self.stream = stream
        self.counted = total is not None  # its records move the bar
        self._shown = 0.0
        self._own: tqdm | None = None
        if stream is None:
            self._own = _bar(stats.stage, total, initial, quiet)
        else:
            stream.join(self, total, initial)

    @property
    def _bar(self) -> tqdm:
        if self._own is not None:
            return self._own
        assert self.stream is not None
        return self.stream.bar

    def _postfix(self) -> str:
        if self.stream is not None:
            return self.stream.postfix()
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
        self._bar.update(n if self.counted else 0)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.leave()
            return
        self._bar.close()
        _CLOSED.append(self._bar)
