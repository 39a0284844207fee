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


def format_total(stages: list[StageStats]) -> str:
    """One line over a whole invocation: what was spent and what the dataset holds."""
    requests = sum(s.requests for s in stages)
    cached = sum(s.cached for s in stages)
    tokens_in = sum(s.prompt_tokens for s in stages)
    tokens_out = sum(s.completion_tokens for s in stages)
    seconds = sum(s.seconds for s in stages)
    kept = ", ".join(f"{s.stage} {s.kept}" for s in stages)
    return (f"[total] kept: {kept}; requests {requests} (+{cached} from cache), "
            f"tokens {tokens_in} in / {tokens_out} out, {seconds:.1f}s")


def print_summary(stats: StageStats, *, quiet: bool = False) -> None:
    if not quiet:
        print(format_summary(stats), file=sys.stderr)
