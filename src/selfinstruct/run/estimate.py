"""--estimate: the requests, tokens and cost a run is expected to need, before running it.

Uses what the run has already seen where it can (kept instructions per bootstrap request,
mean tokens per request of each stage) and otherwise rough assumptions, which are printed."""

from __future__ import annotations

from dataclasses import dataclass, field

from selfinstruct.config import Config, PricingSettings
from selfinstruct.engine.stage import Estimate, Stage
from selfinstruct.llm.choice import ModelChoice
from selfinstruct.prompts import TemplateSet, TemplateSpec
from selfinstruct.run.fingerprints import fingerprints
from selfinstruct.run.layers import explicit
from selfinstruct.run.open import RunOptions, resolve, viewed
from selfinstruct.seeds import seed_hash
from selfinstruct.seeds.task import SeedTask
from selfinstruct.stages import registry
from selfinstruct.store.run_store import RunStore

CHARS_PER_TOKEN = 4.0


@dataclass
class StageEstimate:
    stage: str
    requests: int
    prompt_tokens: float
    completion_tokens: float
    basis: str  # how the requests were worked out
    pricing: PricingSettings = field(default_factory=PricingSettings)  # the stage's prices

    @property
    def cost(self) -> float:
        return self.pricing.cost(self.prompt_tokens, self.completion_tokens)


def estimate(
    config: Config, templates: TemplateSet, seeds: list[SeedTask], store: RunStore | None
) -> list[StageEstimate]:
    """Every stage that sends requests and can say how many it still needs."""
    have = store.pool.instruction_count() if store else 0
    target = max(config.num_instructions, have)
    choice = ModelChoice.of(config.backend, config.model, config.sections)
    known = store.get_meta("model_file") if store else None
    prints = fingerprints(config, choice, templates, seed_hash(seeds), known)
    rows = []
    for stage in registry.generating_stages():
        if not stage.active(config):
            continue
        planned = stage.expected(store, target, prints.get(stage.name))
        if planned is not None:
            chars = _prompt_chars(templates, stage.style(config), stage.sample_template, seeds)
            rows.append(_stage(store, stage, planned, chars, stage.prices(config)))
    return rows


def estimate_run(options: RunOptions) -> list[StageEstimate]:
    """--estimate for a run directory, existing or not (with the settings it would run
    with); nothing is written."""
    if not RunStore.exists(options.out):
        config, templates, seeds = resolve(options.layers, None, explicit(options.layers))
        return estimate(config, templates, seeds, None)
    with viewed(options.out, options.layers, quiet=options.quiet) as ctx:
        return estimate(ctx.config, ctx.templates, ctx.seeds, ctx.store)


def _stage(
    store: RunStore | None,
    stage: Stage,
    planned: Estimate,
    prompt_chars: float,
    pricing: PricingSettings,
) -> StageEstimate:
    seen = store.responses.mean_usage(stage.name) if store else None
    if seen:
        prompt, completion = seen
    else:
        prompt, completion = prompt_chars / CHARS_PER_TOKEN, stage.assumed_output_tokens
    requests = max(planned.requests, 0)
    return StageEstimate(
        stage.name, requests, requests * prompt, requests * completion, planned.basis, pricing
    )


def _prompt_chars(
    templates: TemplateSet, style: str, spec: TemplateSpec | None, seeds: list[SeedTask]
) -> float:
    """The length of a typical prompt of the template (filled from the seeds)."""
    if spec is None:
        return 0.0
    numbered = "\n".join(f"{i}. {t.instruction}" for i, t in enumerate(seeds[:8], start=1))
    sample = seeds[0].instruction if seeds else "Write a short poem about the sea."
    example = seeds[0].instances[0] if seeds and seeds[0].instances else None
    values = {
        "tasks": numbered,
        "next_number": 9,
        "last_number": 16,
        "instruction": sample,
        "max_instances": 5,
        "input": example.input if example else "",
        "output": example.output if example else "A short answer.",
        "labels": "Yes, No",
    }
    prompt = templates.render(style, spec, **{k: v for k, v in values.items() if k in spec.allowed})
    if prompt.text is not None:
        return float(len(prompt.text))
    return float(sum(len(text) for _, text in prompt.messages or ()))


def format_estimate(rows: list[StageEstimate]) -> str:
    lines = [f"{'stage':<10} {'requests':>9} {'tokens in':>12} {'tokens out':>11}  basis"]
    for row in rows:
        lines.append(
            f"{row.stage:<10} {row.requests:>9} {row.prompt_tokens:>12,.0f} "
            f"{row.completion_tokens:>11,.0f}  {row.basis}"
        )
    tokens_in = sum(r.prompt_tokens for r in rows)
    tokens_out = sum(r.completion_tokens for r in rows)
    lines.append(
        f"{'total':<10} {sum(r.requests for r in rows):>9} {tokens_in:>12,.0f} {tokens_out:>11,.0f}"
    )
    prices = {row.stage: row.pricing for row in rows}
    if any(p.priced for p in prices.values()):
        spent = sum(row.cost for row in rows)
        shown = ", ".join(
            f"{name} {p.input_per_million}/{p.output_per_million}"
            for name, p in prices.items()
            if p.priced
        )
        lines.append(f"expected cost: ${spent:.2f} (per million tokens in/out: {shown})")
        if not all(p.priced for p in prices.values()):
            unpriced = ", ".join(name for name, p in prices.items() if not p.priced)
            lines.append(f"no prices set for: {unpriced}")
    else:
        lines.append("set [pricing] input_per_million and output_per_million for a cost")
    lines.append("token counts without usage data are estimated at 4 characters per token")
    return "\n".join(lines)
