"""`--concurrency auto`: the adaptive gate's rules (additive increase, multiplicative
decrease, one cut per overload, slow probing above the ceiling, Retry-After holding growth),
and the flag's parsing."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest
from conftest import cli

from selfinstruct.llm.concurrency import (
    BACK_OFF,
    ERROR,
    OK,
    THROTTLED,
    AdaptiveGate,
    Gate,
    Slot,
    outcome_of,
)


def _fill(gate: Gate) -> list[Slot]:
    """Acquire every slot the gate has now."""

    async def fill() -> list[Slot]:
        return [await gate.acquire() for _ in range(gate.slots - gate.in_flight)]

    return asyncio.run(fill())


def _release(gate: Gate, slot: Slot, outcome: str, retry_after: float | None = None) -> None:
    asyncio.run(gate.release(slot, outcome, retry_after))


def test_fixed_gate_never_changes() -> None:
    gate = Gate(4)
    slots = _fill(gate)
    assert [s.level for s in slots] == [1, 2, 3, 4] and gate.peak == 4
    for slot in slots:
        _release(gate, slot, THROTTLED)
    assert gate.slots == 4 and gate.in_flight == 0


def _round_trip(gate: Gate, outcome: str = OK) -> None:
    """Every slot in use, then every answer back."""
    for slot in _fill(gate):
        _release(gate, slot, outcome)


def test_auto_starts_low_and_nearly_doubles_per_round_trip_while_saturated() -> None:
    gate = AdaptiveGate(4, 100, slow=60)
    sizes = [gate.slots]
    for _ in range(4):
        _round_trip(gate)
        sizes.append(gate.slots)
    assert sizes[0] == 4
    assert all(after >= 1.5 * before for before, after in itertools.pairwise(sizes))


def test_auto_does_not_grow_when_the_limit_is_not_in_use() -> None:
    gate = AdaptiveGate(8, 100, slow=60)

    async def one() -> Slot:
        return await gate.acquire()

    for _ in range(20):  # one request at a time: the limit of 8 was never the bottleneck
        _release(gate, asyncio.run(one()), OK)
    assert gate.slots == 8


def test_a_429_cuts_once_per_overload_and_sets_the_ceiling() -> None:
    gate = AdaptiveGate(16, 100, slow=60)
    slots = _fill(gate)  # 16 in flight
    _release(gate, slots[-1], THROTTLED)  # the 16th was refused: the server takes 15
    assert gate.ceiling == 15 and gate.slots == int(16 * BACK_OFF)
    for slot in slots[:-1]:  # sent before the cut: the same overload, no further cut
        _release(gate, slot, THROTTLED)
    assert gate.cuts == 1 and gate.slots == int(16 * BACK_OFF)


def test_below_the_ceiling_about_one_per_round_trip_then_slow_probing() -> None:
    gate = AdaptiveGate(10, 100, slow=60)
    gate.ceiling = 12
    for _ in range(2):  # half of each round trip's answers grow it by 1/limit
        _round_trip(gate)
    assert gate.slots == 11
    gate.limit = 12.0
    for _ in range(3):  # at the ceiling: a quarter of that pace
        _round_trip(gate)
    assert gate.slots == 12
    for _ in range(6):
        _round_trip(gate)
    assert gate.slots == 13


def test_retry_after_holds_growth_and_slow_answers_count_as_overload() -> None:
    gate = AdaptiveGate(8, 100, slow=60)
    slots = _fill(gate)
    _release(gate, slots[0], THROTTLED, retry_after=30)
    held = gate.slots
    for slot in slots[1:]:
        _release(gate, slot, OK)
    assert gate.slots == held  # no growth before the Retry-After has passed

    slow = AdaptiveGate(8, 100, slow=0.5)
    sent = _fill(slow)
    late = Slot(time.monotonic() - 1.0, sent[-1].level)  # answered after a second
    _release(slow, late, OK)
    assert slow.cuts == 1 and slow.slots < 8


def test_limits_stay_between_one_and_the_maximum() -> None:
    gate = AdaptiveGate(1, 6, slow=60)
    for _ in range(10):
        _round_trip(gate)
    assert gate.slots == 6
    low = AdaptiveGate(1, 6, slow=60)
    (slot,) = _fill(low)
    _release(low, slot, THROTTLED)
    assert low.slots == 1


def test_a_request_waits_for_a_slot_and_gets_the_one_freed() -> None:
    async def scenario() -> list[str]:
        gate, order = Gate(1), []
        first = await gate.acquire()

        async def second() -> None:
            slot = await gate.acquire()
            order.append(f"second in, {gate.in_flight} in flight")
            await gate.release(slot, OK)

        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.01)
        order.append(f"{gate.queued} waiting")
        await gate.release(first, OK)
        await waiting
        return order

    assert asyncio.run(scenario()) == ["1 waiting", "second in, 1 in flight"]


def test_outcomes_of_failures() -> None:
    assert outcome_of(None) == OK
    assert {outcome_of(r) for r in ("http_429", "http_503", "http_529", "timeout")} == {THROTTLED}
    assert {outcome_of(r) for r in ("http_500", "connection", "malformed")} == {ERROR}


@pytest.mark.parametrize("value", ["0", "many", "-3"])
def test_bad_concurrency_is_refused(tmp_path: Path, value: str) -> None:
    out = tmp_path / "run"
    result = cli(
        "bootstrap", "--out", str(out), "--backend", "fake", "--concurrency", value, check=False
    )
    assert result.returncode == 2 and "--concurrency" in result.stderr
    assert not out.exists()


def test_auto_concurrency_is_a_setting(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cli("bootstrap", "--out", str(out), "--backend", "fake", "--concurrency", "auto", "-q")
    assert '"max_concurrency": "auto"' in (out / "run.json").read_text()
    result = cli(
        "bootstrap",
        "--out",
        str(out),
        "--backend",
        "fake",
        "--set",
        "openai.max_concurrency='x'",
        check=False,
    )
    assert result.returncode != 0 and "openai.max_concurrency" in result.stderr
