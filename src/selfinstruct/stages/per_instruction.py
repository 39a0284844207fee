"""Shared loop of the classify and instances stages: one request per instruction, in
acceptance order, batch by batch, each result committed as soon as it arrives.

Batches are fixed windows of the instruction list (instructions 1-5, 6-10, ...), whatever is
already done, so a request never depends on where an earlier process was interrupted."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from selfinstruct.llm.base import Completion, Request
from selfinstruct.reporting.progress import Progress
from selfinstruct.reporting.stats import StageStats
from selfinstruct.stages.context import RunContext
from selfinstruct.store.run_store import InstructionRow

MakeRequests = Callable[[Sequence[InstructionRow], Sequence[InstructionRow]], list[Request]]
Record = Callable[[InstructionRow, str, Completion], str | None]


def run_per_instruction(
    ctx: RunContext,
    stats: StageStats,
    rows: Sequence[InstructionRow],
    done: set[int],
    batch_size: int,
    make_requests: MakeRequests,
    record: Record,
) -> StageStats:
    """`make_requests(window, pending)` builds the requests of the pending rows of a window;
    `record` stores one result inside a transaction and returns a drop reason or None."""
    progress = Progress(stats, len(rows), len(done), quiet=ctx.quiet)
    try:
        for start in range(0, len(rows), batch_size):
            window = rows[start : start + batch_size]
            batch = [row for row in window if row.id not in done]
            if not batch:
                continue
            answers = ctx.complete(stats.stage, make_requests(window, batch), stats)
            for row, (key, answer) in zip(batch, answers, strict=True):
                with ctx.store.transaction():
                    reason = record(row, key, answer)
                if reason:
                    stats.dropped[reason] += 1
                else:
                    stats.kept += 1
                progress.advance()
    finally:
        progress.close()
        stats.stop()
    return stats
