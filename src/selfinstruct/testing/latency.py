"""A latency model for the local test server: how long a GPU server takes to answer.

An answer of n generated tokens takes `ttft + per_token * n` seconds (time to first token,
then one decoding step per token; a body with several prompts is decoded as one batch, so it
takes as long as its longest answer). n is drawn per prompt from the stage's length
distribution and capped at the request's max_tokens.

Lengths are lognormal: `median * exp(sigma * z)` with z standard normal, rounded, at least 1.
Why lognormal: LLM output lengths are right-skewed with a long right tail, and a length is a
product of factors (how many items, how long each), which makes its logarithm roughly normal;
the tail is heavy in the practical sense (subexponential: p99 / p50 = exp(2.326 sigma), about
5x for sigma 0.7) without a Pareto's infinite moments; the two parameters read directly (the
typical length and the spread); and the cap at max_tokens adds the spike of answers cut at
the limit that real runs show. sigma 0 gives a fixed length.

A draw is a pure function of the server's seed, the stage and the request (its canonical
fields), never of arrival order: a rerun against a new server sleeps the same times.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from types import MappingProxyType
from typing import Any

from selfinstruct.llm.base import Request

ANY_STAGE = "*"


@dataclass(frozen=True)
class LengthDistribution:
    """Lognormal answer lengths in tokens: `median * exp(sigma * z)`, z ~ N(0, 1)."""

    median: float
    sigma: float

    def __post_init__(self) -> None:
        if not self.median > 0 or not self.sigma >= 0:
            raise ValueError(f"a length distribution needs median > 0 and sigma >= 0: {self}")

    def draw(self, rng: random.Random) -> int:
        return max(1, round(self.median * math.exp(self.sigma * rng.gauss(0.0, 1.0))))

    def quantile(self, q: float) -> float:
        """The uncapped q-quantile (0 < q < 1), e.g. quantile(0.99) / median for the tail."""
        return self.median * math.exp(self.sigma * NormalDist().inv_cdf(q))

    def __str__(self) -> str:
        return f"{self.median:g}:{self.sigma:g}"


# Typical answer lengths of a Self-Instruct run (tokens; before the cap at max_tokens). The keys
# are the tasks the fake backend recognises a prompt by (FakeAnswer.task).
DEFAULT_LENGTHS: Mapping[str, LengthDistribution] = MappingProxyType(
    {
        # up to ~8 new numbered instructions; max_tokens 1024 cuts about 2% of them
        "bootstrap": LengthDistribution(350, 0.5),
        "bootstrap_classification": LengthDistribution(300, 0.5),
        # "Yes" / "No" and little else; max_tokens 3
        "classify": LengthDistribution(3, 0.4),
        # a few input/output pairs; max_tokens 350 (300 beside classification tasks) cuts the
        # long tail: about 13% (10%) of the answers
        "instances_generation": LengthDistribution(160, 0.7),
        "instances_classification": LengthDistribution(120, 0.7),
        # a label; max_tokens 16
        "relabel": LengthDistribution(4, 0.5),
        # three short yes/no answers with a reason, and a rating
        "judge_instance": LengthDistribution(70, 0.4),
        "judge_rating": LengthDistribution(60, 0.5),
        "judge_pairwise": LengthDistribution(60, 0.5),
        ANY_STAGE: LengthDistribution(100, 0.8),
    }
)


def parse_lengths(spec: str) -> dict[str, LengthDistribution]:
    """The default lengths with `STAGE=MEDIAN:SIGMA[,STAGE=MEDIAN:SIGMA...]` over them; `*`
    is any other stage. E.g. "classify=2:0,instances_generation=250:0.9"."""
    lengths = dict(DEFAULT_LENGTHS)
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        stage, sep, value = part.partition("=")
        median, colon, sigma = value.partition(":")
        try:
            if not (sep and colon and stage.strip()):
                raise ValueError
            lengths[stage.strip()] = LengthDistribution(float(median), float(sigma))
        except ValueError:
            raise ValueError(f"bad length spec {part!r}: expected STAGE=MEDIAN:SIGMA") from None
    return lengths


@dataclass(frozen=True)
class LatencyModel:
    """Seconds to answer: `ttft + per_token * n` per body, n tokens drawn per prompt.

    Defaults resemble a busy GPU server decoding a batch: 0.1 s to the first token, then
    15 ms per token (about 67 tokens/s per sequence).
    """

    ttft: float = 0.1
    per_token: float = 0.015
    lengths: Mapping[str, LengthDistribution] = field(default_factory=lambda: DEFAULT_LENGTHS)

    def __post_init__(self) -> None:
        if min(self.ttft, self.per_token) < 0:
            raise ValueError("ttft and per_token must not be negative")

    def distribution(self, stage: str) -> LengthDistribution:
        found = self.lengths.get(stage) or self.lengths.get(ANY_STAGE)
        return found or DEFAULT_LENGTHS[ANY_STAGE]

    def tokens(self, stage: str, request: Request, seed: int) -> int:
        """Generated tokens for this request: drawn, then capped at its max_tokens."""
        draw = self.distribution(stage).draw(random.Random(draw_key(seed, stage, request)))
        return max(1, min(draw, request.max_tokens))

    def seconds(self, tokens: int) -> float:
        """Service time of a body whose longest answer has `tokens` tokens."""
        return self.ttft + self.per_token * tokens

    def describe(self) -> dict[str, Any]:
        return {
            "ttft": self.ttft,
            "per_token": self.per_token,
            "lengths": {stage: str(dist) for stage, dist in self.lengths.items()},
        }


def draw_key(seed: int, stage: str, request: Request) -> str:
    """A stable key of the seed, the stage and the request's canonical fields."""
    blob = json.dumps([seed, stage, request.canonical()], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------
# What the server did with its time


@dataclass
class _Totals:
    requests: int = 0
    prompts: int = 0
    service_seconds: float = 0.0
    tokens: int = 0

    def add(self, prompts: int, seconds: float, tokens: int) -> None:
        self.requests += 1
        self.prompts += prompts
        self.service_seconds += seconds
        self.tokens += tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "prompts": self.prompts,
            "service_seconds": round(self.service_seconds, 6),
            "tokens": self.tokens,
        }


class ServiceLedger:
    """Thread-safe accounting of generation requests: how many are in progress (refusing
    more than `capacity`), how long at least one was (`busy_seconds`), when the last one ended
    (`last_finished_at`, Unix time), how many were answered 200 and 429, and the service time
    and tokens of the answered ones, in total and per stage."""

    def __init__(self, capacity: int | None = None) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._in_progress = 0
        self._max_in_progress = 0
        self._over_capacity = 0
        self._busy = 0.0
        self._busy_since = 0.0
        self._last_finished_at: float | None = None
        self._cancelled = 0
        self._status: Counter[int] = Counter()
        self._total = _Totals()
        self._stages: dict[str, _Totals] = {}

    def admit(self) -> bool:
        """Start a request, or refuse it (False, counted) when `capacity` are in progress."""
        with self._lock:
            if self.capacity is not None and self._in_progress >= self.capacity:
                self._over_capacity += 1
                self._status[429] += 1
                return False
            if self._in_progress == 0:
                self._busy_since = time.monotonic()
            self._in_progress += 1
            self._max_in_progress = max(self._max_in_progress, self._in_progress)
            return True

    def release(self) -> None:
        with self._lock:
            self._in_progress -= 1
            self._last_finished_at = time.time()
            if self._in_progress == 0:
                self._busy += time.monotonic() - self._busy_since

    def rate_limited(self) -> None:
        """A 429 answered for another reason than capacity (an injected fault)."""
        with self._lock:
            self._status[429] += 1

    def served(self, stage: str, prompts: int, seconds: float, tokens: int) -> None:
        """A request answered 200 after `seconds` of service, generating `tokens`."""
        with self._lock:
            self._status[200] += 1
            self._total.add(prompts, seconds, tokens)
            self._stages.setdefault(stage, _Totals()).add(prompts, seconds, tokens)

    def cancelled(self, stage: str, seconds: float) -> None:
        """A request whose client went away after `seconds` of service: the time was spent
        (a server such as vLLM then stops generating), nothing was answered."""
        with self._lock:
            self._cancelled += 1
            self._total.service_seconds += seconds
            self._stages.setdefault(stage, _Totals()).service_seconds += seconds

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            busy = self._busy + (time.monotonic() - self._busy_since if self._in_progress else 0)
            return {
                "capacity": self.capacity,
                "in_progress": self._in_progress,
                "max_in_progress": self._max_in_progress,
                "busy_seconds": round(busy, 6),
                "last_finished_at": self._last_finished_at,
                "answered_200": self._status[200],
                "answered_429": self._status[429],
                "over_capacity": self._over_capacity,
                "cancelled": self._cancelled,
                **{k: v for k, v in self._total.as_dict().items() if k != "requests"},
                "stages": {name: totals.as_dict() for name, totals in self._stages.items()},
            }
