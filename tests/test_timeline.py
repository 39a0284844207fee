"""How busy the slots were while a stage worked (testing/timeline.py), on hand-made timelines
whose figures are worked out in the comments."""

from __future__ import annotations

import pytest

from selfinstruct.testing.latency import TimelineRow
from selfinstruct.testing.timeline import (
    Idle,
    Span,
    busy_fraction,
    clipped_service,
    idle_time,
    rows_of,
    stage_spans,
)

STAGE_OF = {"bootstrap": "bootstrap", "classify": "classify"}


def row(task: str, started: float, ended: float, service: float | None = None) -> TimelineRow:
    seconds = ended - started if service is None else service
    return TimelineRow(started, ended, task, seconds, "ok")


# Two slots. bootstrap works from 0 to 4, classify from 2 to 8:
#
#   slot 1  A bootstrap [0, 4]      D classify [6, 8]
#   slot 2  B bootstrap [1, 3]  C classify [3, 6]  (C's service: 3 s over [3, 6])
A, B = row("bootstrap", 0, 4), row("bootstrap", 1, 3)
C, D = row("classify", 3, 6), row("classify", 6, 8)
TIMELINE = [A, B, C, D]


def test_a_stage_spans_its_first_start_to_its_last_end() -> None:
    spans = stage_spans(TIMELINE, STAGE_OF)
    assert spans == {"bootstrap": Span(0, 4), "classify": Span(3, 8)}
    assert spans["classify"].seconds == 5
    by_prefix = stage_spans([*TIMELINE, row("instances_generation", 5, 9)], lambda t: t[:4])
    assert by_prefix["inst"] == Span(5, 9)


def test_the_fraction_counts_every_request_in_flight_clipped_to_the_span() -> None:
    # bootstrap [0, 4]: A 4 s, B 2 s, C 1 s of its 3 inside ([3, 4]), D none: 7 / (2 * 4)
    assert clipped_service(TIMELINE, Span(0, 4)) == pytest.approx(7)
    assert busy_fraction(TIMELINE, Span(0, 4), slots=2) == pytest.approx(0.875)
    # its own requests only: 6 / 8
    assert busy_fraction([A, B], Span(0, 4), slots=2) == pytest.approx(0.75)
    # classify [3, 8]: A 1 s ([3, 4]), B none (ends at 3), C 3 s, D 2 s: 6 / (2 * 5)
    assert busy_fraction(TIMELINE, Span(3, 8), slots=2) == pytest.approx(0.6)


def test_a_partial_request_counts_its_service_in_proportion() -> None:
    # in flight [0, 4] with 2 s of service (the rest: waiting, parsing); half inside [2, 10]
    waiting = row("classify", 0, 4, service=2.0)
    assert clipped_service([waiting], Span(2, 10)) == pytest.approx(1.0)
    assert busy_fraction([waiting], Span(2, 10), slots=1) == pytest.approx(1 / 8)


def test_edge_cases() -> None:
    instant = row("classify", 5, 5, service=0.0)
    assert clipped_service([instant], Span(0, 10)) == 0.0
    assert busy_fraction(TIMELINE, Span(3, 3), slots=2) is None
    with pytest.raises(ValueError):
        busy_fraction(TIMELINE, Span(0, 4), slots=0)
    assert stage_spans([], STAGE_OF) == {}


def test_idle_time_before_between_and_after_the_requests() -> None:
    # the command runs [-1.5, 10]; requests cover [0, 8] without a gap; then [8, 10] idle
    assert idle_time(TIMELINE, Span(-1.5, 10)) == Idle(1.5, 2.0, 0.0)
    # a gap of 1 s between [0, 4] and a late request [5, 6]
    late = [A, row("classify", 5, 6)]
    idle = idle_time(late, Span(0, 6))
    assert idle == Idle(0.0, 0.0, 1.0) and idle.total == 1.0
    assert idle_time([], Span(0, 3)) == Idle(3.0, 0.0, 0.0)


def test_rows_come_back_from_json() -> None:
    raw = [[1.5, 2.0, "classify", 0.4, "ok"], [2, 3, "bootstrap", 1, "cancelled"]]
    first, second = rows_of(raw)
    assert first == TimelineRow(1.5, 2.0, "classify", 0.4, "ok")
    assert second.outcome == "cancelled" and isinstance(second.started, float)
