"""The end-of-stage summary: requests, tokens, cost, time, kept, dropped by reason."""

from __future__ import annotations

import sys

from selfinstruct.config import PricingSettings
from selfinstruct.reporting.cost import cost, priced
from selfinstruct.reporting.stats import StageStats


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counter.items(), key=lambda kv: -kv[1]) if n)


def _cost(pricing: PricingSettings | None, tokens_in: int, tokens_out: int) -> str:
    if pricing is None or not priced(pricing):
        return ""
    return f", cost ${cost(pricing, tokens_in, tokens_out):.4f}"


def format_summary(stats: StageStats, pricing: PricingSettings | None = None) -> str:
    dropped = _counts(stats.dropped) or "none"
    notes = "".join(f"; {key} {n}" for key, n in sorted(stats.notes.items()))
    failed = ""
    if stats.failed:
        failed = (f"; failed requests {sum(stats.failed.values())} ({_counts(stats.failed)}), "
                  "rerun to retry them")
    return (
        f"[{stats.stage}] kept {stats.kept}, dropped {stats.dropped_total} ({dropped}); "
        f"requests {stats.requests} (+{stats.cached} from cache), "
        f"tokens {stats.prompt_tokens} in / {stats.completion_tokens} out"
        f"{_cost(pricing, stats.prompt_tokens, stats.completion_tokens)}, "
        f"{stats.seconds:.1f}s{notes}{failed}"
    )


def format_total(stages: list[StageStats], pricing: PricingSettings | None = None) -> str:
    """One line over a whole invocation: what was spent and what the dataset holds."""
    requests = sum(s.requests for s in stages)
    cached = sum(s.cached for s in stages)
    tokens_in = sum(s.prompt_tokens for s in stages)
    tokens_out = sum(s.completion_tokens for s in stages)
    seconds = sum(s.seconds for s in stages)
    kept = ", ".join(f"{s.stage} {s.kept}" for s in stages)
    return (f"[total] kept: {kept}; requests {requests} (+{cached} from cache), "
            f"tokens {tokens_in} in / {tokens_out} out{_cost(pricing, tokens_in, tokens_out)}, "
            f"{seconds:.1f}s")


def print_summary(stats: StageStats, pricing: PricingSettings | None = None, *,
                  quiet: bool = False) -> None:
    if not quiet:
        print(format_summary(stats, pricing), file=sys.stderr)
