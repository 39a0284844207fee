"""Spending limits of a run: `--max-tokens N` and `--max-cost AMOUNT`.

Spending counts every answer the run has stored (earlier processes included), priced at each
stage's prices. Before a request is sent it must fit what is left with every request in
flight counted at its maximum: its prompt at an upper bound of its tokens and `max_tokens`
generated. A request that does not fit is not sent; the stage lets the requests in flight
finish and stops with `BudgetExhausted`, saying what was spent and what is left to do. A rerun
with a larger budget continues where it stopped.

A prompt's tokens are bounded by its UTF-8 bytes (a byte-level tokenizer never makes more
tokens than bytes) plus `OVERHEAD` per chat message; once answers have reported their prompt
tokens, the largest tokens-per-byte ratio seen, with a `MARGIN`, takes the bytes' place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from selfinstruct.config import PricingSettings
from selfinstruct.console.stats import StageStats
from selfinstruct.errors import BudgetExhausted
from selfinstruct.llm.base import Completion, Request

OVERHEAD = 16  # tokens a chat template may add per message
MARGIN = 1.25


def prompt_bytes(request: Request) -> int:
    if request.prompt is not None:
        return len(request.prompt.encode("utf-8"))
    return sum(len(text.encode("utf-8")) for _, text in request.messages or ())


def message_count(request: Request) -> int:
    return len(request.messages or ()) or 1


@dataclass
class Reservation:
    prompt_tokens: int
    completion_tokens: int
    cost: float


@dataclass
class Budget:
    """What the run may still spend; `spent_*` start at what its stored answers cost."""

    max_tokens: int | None = None
    max_cost: float | None = None
    spent_tokens: int = 0
    spent_cost: float = 0.0
    prices: dict[str, PricingSettings] = field(default_factory=dict)
    tokens_per_byte: float | None = None
    reserved_tokens: int = 0
    reserved_cost: float = 0.0
    refused: str = ""  # the stage whose request did not fit, once one did not

    @property
    def limited(self) -> bool:
        return self.max_tokens is not None or self.max_cost is not None

    def reserve(self, stage: str, request: Request) -> Reservation | None:
        """Count a request in flight at its maximum, or None (and remember) if it does not
        fit what is left."""
        prompt = self._prompt_bound(request)
        cost = self.price(stage, prompt, request.max_tokens)
        tokens = prompt + request.max_tokens
        over_tokens = self.max_tokens is not None and (
            self.spent_tokens + self.reserved_tokens + tokens > self.max_tokens
        )
        over_cost = self.max_cost is not None and (
            self.spent_cost + self.reserved_cost + cost > self.max_cost
        )
        if over_tokens or over_cost:
            self.refused = self.refused or stage
            return None
        self.reserved_tokens += tokens
        self.reserved_cost += cost
        return Reservation(prompt, request.max_tokens, cost)

    def settle(
        self, stage: str, request: Request, held: Reservation, answer: Completion | None
    ) -> None:
        """A request in flight came back: its reservation becomes what it really cost."""
        self.reserved_tokens -= held.prompt_tokens + held.completion_tokens
        self.reserved_cost -= held.cost
        if answer is None:
            return
        self.spent_tokens += answer.prompt_tokens + answer.completion_tokens
        self.spent_cost += self.price(stage, answer.prompt_tokens, answer.completion_tokens)
        self._learn(request, answer)

    def spent(self) -> str:
        """What the run has spent, against its limits."""
        parts = [f"{self.spent_tokens:,} tokens"]
        if self.max_tokens is not None:
            parts[0] += f" of --max-tokens {self.max_tokens:,}"
        if self.max_cost is not None:
            parts.append(f"${self.spent_cost:,.4f} of --max-cost {self.max_cost:,.2f}")
        return ", ".join(parts)

    def price(self, stage: str, prompt: int, completion: int) -> float:
        prices = self.prices.get(stage)
        return 0.0 if prices is None else prices.cost(prompt, completion)

    def _prompt_bound(self, request: Request) -> int:
        size = prompt_bytes(request)
        overhead = OVERHEAD * message_count(request)
        if self.tokens_per_byte is None:
            return size + overhead
        return min(size, int(size * self.tokens_per_byte * MARGIN) + 1) + overhead

    def _learn(self, request: Request, answer: Completion) -> None:
        size = prompt_bytes(request)
        if size and answer.prompt_tokens:
            ratio = answer.prompt_tokens / size
            self.tokens_per_byte = max(self.tokens_per_byte or 0.0, ratio)


def budget_stop(budget: Budget | None, stats: StageStats, left: str) -> BudgetExhausted:
    """The error a stage stops with when the budget refused its next request."""
    spent = budget.spent() if budget is not None else "the budget"
    return BudgetExhausted(
        f"budget reached: the run has spent {spent}, and the next {stats.stage} request "
        f"could exceed it (requests in flight count at their max_tokens); {stats.stage} has "
        f"{left}, and the stages after it have not run. Everything answered so far is saved: "
        "rerun with a larger --max-tokens or --max-cost to continue"
    )
