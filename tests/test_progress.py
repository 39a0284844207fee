"""The progress bar: requests and tokens show while no record is done yet, and the ETA is an
average over the stage, not a moving average that one slow first record inflates."""

from __future__ import annotations

import gc
import re
import weakref

import pytest

from selfinstruct.console.progress import Progress, short_count
from selfinstruct.console.stats import StageStats


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr("tqdm.std.time", fake)
    monkeypatch.setattr("selfinstruct.console.progress.time.monotonic", fake)
    return fake


def last_line(err: str) -> str:
    return [line for line in re.split(r"[\r\n]", err) if line.strip()][-1]


def test_requests_and_tokens_show_before_any_record(clock: Clock, capsys) -> None:
    stats = StageStats("bootstrap", unit="instructions")
    progress = Progress(stats, 20, 0, quiet=False)
    for answered in range(1, 4):
        clock.now += 40
        stats.requests = answered
        stats.prompt_tokens += 300
        stats.completion_tokens += 1024
        progress.show_counts()
    line = last_line(capsys.readouterr().err)
    progress.close()
    assert "0/20 [02:00<?" in line
    assert "kept=0 dropped=0 requests=3 tokens=4.0k" in line


def test_the_eta_after_a_slow_first_batch_is_the_stage_average(clock: Clock, capsys) -> None:
    stats = StageStats("bootstrap", unit="instructions")
    progress = Progress(stats, 20, 0, quiet=False)
    clock.now += 180  # the first batch takes three minutes, then its candidates are judged
    for _ in range(8):
        stats.kept += 1
        progress.advance()
        clock.now += 0.001
    clock.now += 0.5
    progress.show_counts()
    line = last_line(capsys.readouterr().err)
    progress.close()
    # 8 records in 3 minutes: 12 more take about 4.5 minutes.
    assert " 8/20 [03:00<04:30," in line, line


def test_counts_refresh_a_few_times_a_second_at_most(clock: Clock, capsys) -> None:
    stats = StageStats("classify", unit="instructions", verb="labelled")
    progress = Progress(stats, 1000, 0, quiet=False)
    capsys.readouterr()
    for i in range(1, 101):
        stats.requests = i
        clock.now += 0.001
        progress.show_counts()
    progress.close()
    assert capsys.readouterr().err.count("requests=") <= 2


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0"), (999, "999"), (1000, "1.0k"), (12345, "12.3k"), (2_500_000, "2.5M")]
)
def test_short_count(n: int, text: str) -> None:
    assert short_count(n) == text


def test_a_closed_bar_is_not_finalized_while_the_command_runs() -> None:
    """tqdm's finalizer must not run mid-run: Python ignores a Ctrl-C that arrives inside a
    finalizer, and the command would go on (seen at a stage boundary in the Ctrl-C test)."""
    progress = Progress(StageStats("classify"), 10, 0, quiet=True)
    bar = weakref.ref(progress._bar)
    progress.close()
    del progress
    gc.collect()
    assert bar() is not None
