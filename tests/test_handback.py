"""A server backend's results go back to the feed in ticket order, those that ended together
in one `put_all`; a request that raised (an answer no retry can fix) raises after the results
before it are handed back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from selfinstruct.errors import BackendError
from selfinstruct.llm.base import Completion, Request, Result
from selfinstruct.llm.handback import Handback


class Recording:
    def __init__(self) -> None:
        self.groups: list[list[int]] = []

    def take(self, limit: int) -> list[tuple[int, Request]]:
        return []

    def put(self, ticket: int, result: Result) -> None:
        self.groups.append([ticket])

    def put_all(self, results: Sequence[tuple[int, Result]]) -> None:
        self.groups.append([ticket for ticket, _ in results])

    def abandoned(self) -> list[int]:
        return []

    finished = False


async def answer(delay: float, fail: bool = False) -> Result:
    await asyncio.sleep(delay)
    if fail:
        raise BackendError("401")
    return Completion("ok", "stop")


def test_results_that_end_together_go_back_together_in_ticket_order() -> None:
    async def scenario() -> list[list[int]]:
        feed = Recording()
        back = Handback(feed, asyncio.Event())
        for ticket, delay in ((3, 0.0), (1, 0.0), (2, 0.05)):
            back.track(asyncio.create_task(answer(delay)), ticket)
        while back.in_flight:
            await back.wake.wait()
            back.wake.clear()
            back.hand_back()
        return feed.groups

    assert asyncio.run(scenario()) == [[1, 3], [2]]


def test_a_request_that_raised_raises_after_the_results_before_it() -> None:
    async def scenario() -> tuple[list[list[int]], int]:
        feed = Recording()
        back = Handback(feed, asyncio.Event())
        for ticket, fail in ((1, False), (2, True), (3, False)):
            back.track(asyncio.create_task(answer(0.0, fail)), ticket)
        await asyncio.sleep(0.01)
        with pytest.raises(BackendError):
            back.hand_back()
        left = back.in_flight
        await back.cancel()
        return feed.groups, left

    assert asyncio.run(scenario()) == ([[1]], 1)
