"""Bootstrap's settings: the paper's prompt and filter parameters, how far ahead prompts are
composed, and the stops its requests use."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from selfinstruct.config import RequestSettings
from selfinstruct.llm.choice import ModelChoice

STAGE = "bootstrap"
# What bootstrap does with a response cut off at max_tokens: the paper discards it whole;
# Alpaca keeps its complete items and drops only the last, cut one.
TRUNCATED_RESPONSES = ("discard", "keep_complete_items")
TOKENIZERS = ("rouge", "unicode")
BLOCKED_KEYWORDS = [
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
]
# k for a backend that keeps many requests in flight (a server): enough batches for twice its
# slots in requests, so they stay busy while one slow answer holds the judging back (heavy-
# tailed answer lengths), at least 8 (the default 16 slots) and at most 32 (bounds how many
# accepted instructions a prompt's pool may miss). A local engine that answers one request at
# a time gains nothing from k > 1 and gets the paper's k = 1.
AHEAD_PER_SLOT = 2
SERVER_BATCHES_IN_FLIGHT = 8
MAX_AUTO_BATCHES = 32
PAPER_SCHEDULE = "paper"  # k = 1: every prompt sees every batch before its own
AUTO_SCHEDULE = "auto"


@dataclass
class BootstrapSettings(RequestSettings):
    """Stage 1: new instructions from the task pool."""

    num_prompt_instructions: int = 8  # instructions shown per prompt
    num_machine_instructions: int = 2  # of which machine-generated (fewer while the pool has fewer)
    classification_only: bool = False  # classification seeds only, and a classification header
    temperature: float = 0.7
    top_p: float = 0.5
    presence_penalty: float = 2.0
    max_tokens: int = 1024
    # a response cut at max_tokens: discard (the paper) or keep_complete_items
    truncated_responses: str = "discard"
    min_words: int = 4  # instructions with fewer words are dropped
    max_words: int = 150  # instructions with more words are dropped
    # instructions naming one are dropped (tasks a text model cannot do)
    blocked_keywords: list[str] = field(default_factory=lambda: list(BLOCKED_KEYWORDS))
    # instructions starting with one are dropped
    blocked_prefixes: list[str] = field(default_factory=lambda: ["Write a program"])
    # dropped when the highest ROUGE-L F against the pool is above this
    rouge_threshold: float = 0.7
    tokenizer: str = "rouge"  # rouge (rouge_score's, ASCII) or unicode (any script)
    most_similar: int = 10  # pool items kept in an instruction's most_similar
    max_requests: int = 0  # stop after this many requests (0: no limit)
    # k: batch b's prompts see the pool after batch b - k; auto: about 2 x the backend's slots
    # in requests for a server (8 to 32 batches), 1 for a local engine; paper: 1
    batches_in_flight: int | str = AUTO_SCHEDULE
    similarity_workers: int = 0  # processes scoring ROUGE-L blocks (0: every core; 1: none started)

    # Settings added after runs existed, with the value runs made before them behaved by.
    EARLIER: ClassVar[dict[str, Any]] = {"batches_in_flight": 1}

    def schedule(self, choice: ModelChoice) -> int:
        """k: batch b's prompts show the pool as it stood after batch b - k was judged ("auto":
        for a backend that serves requests in parallel, batches for AHEAD_PER_SLOT times its
        slots, between SERVER_BATCHES_IN_FLIGHT and MAX_AUTO_BATCHES; else 1). A function of
        the settings alone, never of timing: a rerun composes the same prompts."""
        if self.batches_in_flight == AUTO_SCHEDULE:
            if not choice.backend.parallel:
                return 1
            wanted = -(-AHEAD_PER_SLOT * choice.slots() // self.request_batch_size)
            return min(MAX_AUTO_BATCHES, max(SERVER_BATCHES_IN_FLIGHT, wanted))
        if isinstance(self.batches_in_flight, str):
            return 1  # "paper"
        return self.batches_in_flight

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        if isinstance(self.batches_in_flight, str):
            if self.batches_in_flight not in (AUTO_SCHEDULE, PAPER_SCHEDULE):
                yield "batches_in_flight", "must be a number >= 1, 'auto' or 'paper'"
        elif not 1 <= self.batches_in_flight <= 4096:
            yield "batches_in_flight", "must be between 1 and 4096 (or 'auto', 'paper')"
        if self.similarity_workers < 0:
            yield "similarity_workers", "must be >= 0 (0: every core)"
        if self.tokenizer not in TOKENIZERS:
            yield "tokenizer", f"must be one of {', '.join(TOKENIZERS)}"
        if self.truncated_responses not in TRUNCATED_RESPONSES:
            yield "truncated_responses", f"must be one of {', '.join(TRUNCATED_RESPONSES)}"
        if not 1 <= self.num_prompt_instructions <= 64:
            yield "num_prompt_instructions", "must be between 1 and 64"
        if not 0 <= self.num_machine_instructions <= self.num_prompt_instructions:
            yield "num_machine_instructions", "must be between 0 and num_prompt_instructions"
        if not 0 <= self.min_words <= self.max_words:
            yield "min_words", "must be between 0 and max_words"
        if self.most_similar < 0:
            yield "most_similar", "must be >= 0"
        if not 0.0 <= self.rouge_threshold <= 1.0:
            yield "rouge_threshold", "must be between 0 and 1"


def default_stops(style: str) -> list[str]:
    """The paper's stops for completion (a blank line, item 16); chat answers have no blank
    line to stop at."""
    item16 = ["\n16", "16.", "16 ."]
    return ["\n\n", *item16] if style == "completion" else item16


def request_stops(style: str, settings: BootstrapSettings) -> list[str]:
    """The stops its requests use: the configured ones, else the default for the style."""
    return settings.stop if settings.stop is not None else default_stops(style)
