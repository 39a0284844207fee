"""How busy the server's slots were while each stage worked, read off its timeline.

The test server's ledger keeps one row per generation request (testing/latency.py,
`TimelineRow`: admitted, answer ready, task, service seconds). A stage's **busy span** runs
from the start of its first request to the end of its last one. While a stage works, the
others may work too (a streaming run shares its slots), so the question is not "how much did
this stage send" but "how busy were all the slots while this stage was working":

    fraction = (service seconds of every request in flight during the span, each clipped
                to the span) / (slots * span seconds)

1.0 means every slot served something from the stage's first request to its last answer. A
request partly inside the span counts with the share of its time inside (its service seconds
times overlap / its own length), so a long answer that began before the span does not count
whole. The slots are the client's `--concurrency`, or the server's capacity when the client
adapts to it.

Everything here is a pure function of the rows: a benchmark fetches them (GET /timeline) and
tests feed hand-made ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from selfinstruct.testing.latency import TimelineRow


@dataclass(frozen=True)
class Span:
    """From `start` to `end` (Unix seconds)."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)

    def overlap(self, start: float, end: float) -> float:
        """Seconds of [start, end] inside the span."""
        return max(0.0, min(end, self.end) - max(start, self.start))


def rows_of(raw: Iterable[Sequence[Any]]) -> list[TimelineRow]:
    """Rows as GET /timeline sends them (lists) back into TimelineRows."""
    return [TimelineRow(float(a), float(b), str(t), float(s), str(o)) for a, b, t, s, o in raw]


def stage_spans(
    rows: Iterable[TimelineRow], stage_of: Callable[[str], str] | Mapping[str, str]
) -> dict[str, Span]:
    """Each stage's busy span: its first request's start to its last request's end. A task
    maps to its stage through `stage_of` (a mapping leaves unknown tasks as they are)."""
    lookup = stage_of if callable(stage_of) else (lambda task: stage_of.get(task, task))
    spans: dict[str, Span] = {}
    for row in rows:
        stage = lookup(row.task)
        found = spans.get(stage)
        if found is None:
            spans[stage] = Span(row.started, row.ended)
        else:
            spans[stage] = Span(min(found.start, row.started), max(found.end, row.ended))
    return spans


def clipped_service(rows: Iterable[TimelineRow], span: Span) -> float:
    """Service seconds of the requests in flight during `span`, each counted with the share
    of its own time that falls inside the span."""
    total = 0.0
    for row in rows:
        length = row.ended - row.started
        if length <= 0:  # an instant: in or out
            total += row.service_seconds if span.start <= row.started <= span.end else 0.0
        else:
            total += row.service_seconds * span.overlap(row.started, row.ended) / length
    return total


def busy_fraction(rows: Iterable[TimelineRow], span: Span, slots: int) -> float | None:
    """The share of `slots` in service during `span` (None for an empty span)."""
    if slots < 1:
        raise ValueError("slots must be >= 1")
    if span.seconds <= 0:
        return None
    return clipped_service(rows, span) / (slots * span.seconds)


@dataclass(frozen=True)
class Idle:
    """Time of a command outside any request: before the first was admitted, after the last
    answer, and in gaps between with nothing in flight."""

    before_first: float
    after_last: float
    gaps: float

    @property
    def total(self) -> float:
        return self.before_first + self.after_last + self.gaps


def idle_time(rows: Sequence[TimelineRow], command: Span) -> Idle:
    """Where the command (`command`: its start to its exit) had no request in flight."""
    if not rows:
        return Idle(command.seconds, 0.0, 0.0)
    ordered = sorted(rows, key=lambda row: row.started)
    gaps, reach = 0.0, ordered[0].ended
    for row in ordered[1:]:
        gaps += max(0.0, row.started - reach)
        reach = max(reach, row.ended)
    first = ordered[0].started
    return Idle(max(0.0, first - command.start), max(0.0, command.end - reach), gaps)
