"""Shared loop of the classify and instances stages: one request per instruction, in
acceptance order, batch by batch, each result committed as soon as it arrives."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from selfinstruct.llm.base import Completion, Request
from selfinstruct.reporting.progress import Progress
from selfinstruct.reporting.stats import StageStats
from selfinstruct.stages.context import RunContext
from selfinstruct.store.run_store import InstructionRow

MakeRequests = Callable[[Sequence[InstructionRow]], list[Request]]
Record = Callable[[InstructionRow, str, Completion], str | None]


def run_per_instruction(
    ctx: RunContext,
    stats: StageStats,
    rows: Sequence[InstructionRow],
    done: int,
    batch_size: int,
    make_requests: MakeRequests,
    record: Record,
) -> StageStats:
    """`record` stores one result inside a transaction and returns a drop reason or None."""
    progress = Progress(stats, done + len(rows), done, quiet=ctx.quiet)
    try:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            answers = ctx.complete(stats.stage, make_requests(batch), stats)
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
