"""How a server backend hands its requests' results back to a feed (asyncio).

Each request runs as a task that wakes the loop when it ends (a done callback sets `wake`),
where `asyncio.wait` on every task in flight would add and remove a callback on each of them
(up to the concurrency) at every wake-up, and a wake-up comes with nearly every answer. The
results of all the tasks that have ended when the loop runs go back together, in ticket
order, in one `Feed.put_all` (the feed stores them in one commit).
"""

from __future__ import annotations

import asyncio

from selfinstruct.llm.base import Feed, Result


class Handback:
    """The tasks in flight for a feed, and their results on the way back to it. `wake` is
    set when a task ends, and by whoever else shares it (the gate, when a slot frees)."""

    def __init__(self, feed: Feed, wake: asyncio.Event) -> None:
        self.feed = feed
        self.wake = wake
        self.tickets: dict[asyncio.Task[Result], int] = {}
        self.dropped: set[asyncio.Task[Result]] = set()  # stopped, not yet ended

    @property
    def in_flight(self) -> int:
        return len(self.tickets)

    def track(self, task: asyncio.Task[Result], ticket: int) -> None:
        self.tickets[task] = ticket
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[Result]) -> None:
        self.wake.set()

    def hand_back(self) -> None:
        """Put the results of the tasks that have ended (their callbacks run or not), in
        ticket order; a task that raised (an answer no retry can fix) raises here, after the
        results before it."""
        ended = sorted((t for t in self.tickets if t.done()), key=self.tickets.__getitem__)
        if not ended:
            return
        results: list[tuple[int, Result]] = []
        try:
            for task in ended:
                results.append((self.tickets.pop(task), task.result()))
        finally:
            if results:
                self.feed.put_all(results)

    def drop_abandoned(self) -> None:
        """Stop the requests whose answers the feed no longer wants (a finished stage of a
        stream): their slots free for the others, their results never go back."""
        unwanted = set(self.feed.abandoned())
        if not unwanted:
            return
        for task, ticket in list(self.tickets.items()):
            if ticket in unwanted:
                del self.tickets[task]
                task.cancel()
                self.dropped.add(task)
                task.add_done_callback(self.dropped.discard)

    async def cancel(self) -> None:
        """Stop the tasks still in flight (the server stops generating them); results not
        handed back are dropped."""
        for task in self.tickets:
            task.cancel()
        await asyncio.gather(*self.tickets, *self.dropped, return_exceptions=True)
