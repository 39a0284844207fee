"""Money spent or expected, from token counts and the configured prices."""

from __future__ import annotations

from selfinstruct.config import PricingSettings


def priced(pricing: PricingSettings) -> bool:
    return pricing.input_per_million > 0 or pricing.output_per_million > 0


def cost(pricing: PricingSettings, prompt_tokens: float, completion_tokens: float) -> float:
    return (
        prompt_tokens * pricing.input_per_million + completion_tokens * pricing.output_per_million
    ) / 1_000_000
