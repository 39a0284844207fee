"""The end-of-stage summary: requests, tokens, time, kept, dropped by reason."""

from __future__ import annotations

import sys

from selfinstruct.reporting.stats import StageStats


def format_summary(stats: StageStats) -> str:
    dropped = ", ".join(
        f"{reason} {n}" for reason, n in stats.dropped.most_common() if n) or "none"
    notes = "".join(f"; {key} {n}" for key, n in sorted(stats.notes.items()))
    return (
        f"[{stats.stage}] kept {stats.kept}, dropped {stats.dropped_total} ({dropped}); "
        f"requests {stats.requests} (+{stats.cached} from cache), "
        f"tokens {stats.prompt_tokens} in / {stats.completion_tokens} out, "
        f"{stats.seconds:.1f}s{notes}"
    )


def print_summary(stats: StageStats, *, quiet: bool = False) -> None:
    if not quiet:
        print(format_summary(stats), file=sys.stderr)
