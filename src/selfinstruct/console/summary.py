"""The end-of-stage summary: what was kept and dropped (each count in one unit), requests,
tokens, cost and time, then details and warnings."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from selfinstruct.config import PricingSettings
from selfinstruct.console.stats import StageStats


def counts(counter: dict[str, int]) -> str:
    """ "a 3, b 1": reasons by count, largest first."""
    return ", ".join(f"{k} {n}" for k, n in sorted(counter.items(), key=lambda kv: -kv[1]) if n)


def _cost(pricing: PricingSettings | None, tokens_in: int, tokens_out: int) -> str:
    if pricing is None or not pricing.priced:
        return ""
    return f", cost ${pricing.cost(tokens_in, tokens_out):.4f}"


def _outcome(stats: StageStats) -> str:
    """ "kept 20 instructions, dropped 45 candidates (rouge 30, ...)" and other units' losses."""
    parts = [f"{stats.verb} {stats.kept} {stats.unit}"]
    if stats.dropped_total:
        parts.append(f"dropped {stats.dropped_total} ({counts(stats.dropped)})")
    text = ", ".join(parts)
    for unit, lost in sorted(stats.lost.items()):
        if sum(lost.values()):
            text += f"; {unit} dropped {sum(lost.values())} ({counts(lost)})"
    return text


def idle(stats: StageStats) -> bool:
    """Whether a stage found nothing left to do: it sent no request (nor took one from the
    cache), and kept, dropped, lost and failed nothing."""
    lost = any(sum(counter.values()) for counter in stats.lost.values())
    return not (
        stats.requests or stats.cached or stats.kept or stats.dropped_total or stats.failed or lost
    )


def format_idle(stats: StageStats, held: int | None = None) -> str:
    """ "[classify] nothing left to do: 20 instructions already labelled" (`held`: what the
    stage holds in its unit, when known)."""
    done = f": {held} {stats.unit} already {stats.verb}" if held is not None else ""
    return f"[{stats.stage}] nothing left to do{done}"


def format_complete(name: str, instructions: int, instances: int | None, target: int) -> str:
    """What a command that found nothing left to generate says about the run: its
    instructions, its dataset's instances (None: no dataset yet) and, when it holds the
    instructions asked for, the flag that extends it."""
    dataset = f", {instances} instances in the dataset" if instances is not None else ""
    extend = ""
    if instructions >= target:
        extend = f" (a --num-instructions larger than {instructions} extends it)"
    return (
        f"[{name}] already complete: {instructions} instructions{dataset}; "
        f"nothing left to generate{extend}"
    )


def format_summary(stats: StageStats, pricing: PricingSettings | None = None) -> str:
    notes = "".join(f"; {key} {n}" for key, n in sorted(stats.notes.items()))
    failed = ""
    if stats.failed:
        failed = (
            f"; failed requests {sum(stats.failed.values())} ({counts(stats.failed)}), "
            "rerun to retry them"
        )
    line = (
        f"[{stats.stage}] {_outcome(stats)}; "
        f"requests {stats.requests} (+{stats.cached} from cache), "
        f"tokens {stats.prompt_tokens} in / {stats.completion_tokens} out"
        f"{_cost(pricing, stats.prompt_tokens, stats.completion_tokens)}, "
        f"{stats.seconds:.1f}s{notes}{failed}"
    )
    lines = [line, *(f"  {detail}" for detail in stats.details)]
    lines += [f"warning: {warning}" for warning in stats.warnings]
    return "\n".join(lines)


def format_total(
    stages: list[StageStats], pricing: Mapping[str, PricingSettings] | None = None
) -> str:
    """One line over a whole invocation: what was spent (each stage at its own prices, by
    stage name) and what the stages that had something to do kept."""
    requests = sum(s.requests for s in stages)
    cached = sum(s.cached for s in stages)
    tokens_in = sum(s.prompt_tokens for s in stages)
    tokens_out = sum(s.completion_tokens for s in stages)
    # The wall time from the first stage's start to the last one's end: stages of a stream
    # overlap, so their own times do not add up.
    seconds = max(s.clock[1] for s in stages) - min(s.clock[0] for s in stages) if stages else 0.0
    kept = ", ".join(f"{s.stage} {s.verb} {s.kept} {s.unit}" for s in stages if not idle(s))
    kept = kept or "nothing to do"
    prices = [pricing.get(s.stage) for s in stages] if pricing else []
    spent = ""
    if any(p is not None and p.priced for p in prices):
        total = sum(
            p.cost(s.prompt_tokens, s.completion_tokens)
            for s, p in zip(stages, prices, strict=True)
            if p is not None
        )
        spent = f", cost ${total:.4f}"
    return (
        f"[total] {kept}; requests {requests} (+{cached} from cache), "
        f"tokens {tokens_in} in / {tokens_out} out{spent}, {seconds:.1f}s"
    )


def print_summary(
    stats: StageStats, pricing: PricingSettings | None = None, *, quiet: bool = False
) -> None:
    """The summary on stderr; warnings are printed even when quiet."""
    if not quiet:
        print(format_summary(stats, pricing), file=sys.stderr)
    else:
        for warning in stats.warnings:
            print(f"warning: {warning}", file=sys.stderr)
