"""--estimate: the requests, tokens and cost a run is expected to need, before running it.

Uses what the run has already seen where it can (kept instructions per bootstrap request,
mean tokens per request of each stage) and otherwise rough assumptions, which are printed."""

from __future__ import annotations

import math
from dataclasses import dataclass

from selfinstruct.config import Config
from selfinstruct.prompts import TemplateSet
from selfinstruct.reporting.cost import cost, priced
from selfinstruct.seeds.task import SeedTask
from selfinstruct.store.run_store import RunStore

CHARS_PER_TOKEN = 4.0
ASSUMED_KEPT_PER_REQUEST = 3.0
ASSUMED_OUTPUT = {"bootstrap": 200.0, "classify": 2.0, "instances": 150.0}


@dataclass
class StageEstimate:
    stage: str
    requests: int
    prompt_tokens: float
    completion_tokens: float
    basis: str


def estimate(config: Config, templates: TemplateSet, seeds: list[SeedTask],
             store: RunStore | None) -> list[StageEstimate]:
    have = store.instruction_count() if store else 0
    target = max(config.num_instructions, have)
    labelled = store.count("labels") if store else 0
    with_instances = store.count("instances") if store else 0
    sample = seeds[0].instruction if seeds else "Write a short poem about the sea."
    kept_per_request, basis = _yield(store)
    bootstrap_requests = math.ceil(max(0, target - have) / kept_per_request)
    plans = [
        ("bootstrap", bootstrap_requests, _prompt_chars(templates, config, "bootstrap", seeds),
         basis),
        ("classify", target - labelled, _prompt_chars(templates, config, "classify", seeds,
                                                      sample), "one per instruction"),
        ("instances", target - with_instances,
         _prompt_chars(templates, config, "instances_generation", seeds, sample),
         "one per instruction"),
    ]
    return [_stage(store, stage, n, chars, note) for stage, n, chars, note in plans]


def _yield(store: RunStore | None) -> tuple[float, str]:
    done = store.completed_requests() if store else 0
    if store and done and store.instruction_count():
        rate = store.instruction_count() / done
        return rate, f"{rate:.1f} kept per request so far"
    return ASSUMED_KEPT_PER_REQUEST, f"assumes {ASSUMED_KEPT_PER_REQUEST:.0f} kept per request"


def _stage(store: RunStore | None, stage: str, requests: int, prompt_chars: float,
           basis: str) -> StageEstimate:
    seen = store.mean_usage(stage) if store else None
    if seen:
        prompt, completion = seen
    else:
        prompt, completion = prompt_chars / CHARS_PER_TOKEN, ASSUMED_OUTPUT[stage]
    return StageEstimate(stage, max(requests, 0), max(requests, 0) * prompt,
                         max(requests, 0) * completion, basis)


def _prompt_chars(templates: TemplateSet, config: Config, name: str, seeds: list[SeedTask],
                  instruction: str = "") -> float:
    numbered = "\n".join(f"{i}. {t.instruction}" for i, t in enumerate(seeds[:8], start=1))
    prompt = templates.render(config.prompt_style, name, tasks=numbered, next_number=9,
                              last_number=16, instruction=instruction, max_instances=5)
    if prompt.text is not None:
        return float(len(prompt.text))
    return float(sum(len(text) for _, text in prompt.messages or ()))


def format_estimate(rows: list[StageEstimate], config: Config) -> str:
    lines = [f"{'stage':<10} {'requests':>9} {'tokens in':>12} {'tokens out':>11}  basis"]
    for row in rows:
        lines.append(f"{row.stage:<10} {row.requests:>9} {row.prompt_tokens:>12,.0f} "
                     f"{row.completion_tokens:>11,.0f}  {row.basis}")
    tokens_in = sum(r.prompt_tokens for r in rows)
    tokens_out = sum(r.completion_tokens for r in rows)
    lines.append(f"{'total':<10} {sum(r.requests for r in rows):>9} {tokens_in:>12,.0f} "
                 f"{tokens_out:>11,.0f}")
    if priced(config.pricing):
        lines.append(f"expected cost: ${cost(config.pricing, tokens_in, tokens_out):.2f} "
                     f"(at {config.pricing.input_per_million}/{config.pricing.output_per_million}"
                     " per million tokens in/out)")
    else:
        lines.append("set [pricing] input_per_million and output_per_million for a cost")
    lines.append("token counts without usage data are estimated at 4 characters per token")
    return "\n".join(lines)
