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

Named profiles (`PROFILES`, the server's `--profile`; `--lengths` takes a preset's name too):

- `default`: ttft 0.1 s, 15 ms per token, DEFAULT_LENGTHS (sigma 0.4-0.8: p99/p50 2.5-6.4).
- `heavy`: the latency of issue 24's outside measurement, ttft 0.2 s and 5 ms per token, with
  HEAVY_LENGTHS: most answers short, a few many times longer. Every stage is lognormal with
  sigma 1.0, so p99/p50 = exp(2.326) = 10.2 before the cap (>= 8 for any sigma >= 0.9), and
  the mean is 1.65x the median. The cap at the request's max_tokens (the stages' defaults)
  then cuts the tail into a spike at the limit:

      task                      median  p99 (uncapped)  max_tokens  cut at the cap  p99/p50 capped
      bootstrap                    200       2,047         1024          5.1%            5.1
      bootstrap_classification     180       1,843         1024          4.1%            5.7
      classify                       2          20            3         34%              1.5
      instances_generation         100       1,024          350         10.5%            3.5
      instances_classification      80         819          300          9.3%            3.8
      relabel                        4          41           16          8.3%            4
      judge_instance                60         614          200         11.4%            3.3
      judge_rating, judge_pairwise  50         512          200          8.3%            4
      any other (*)                100       1,024            -            -             10.2

  In seconds: a bootstrap answer takes 1.2 s at the median and up to 5.3 s at the cap, an
  instances answer 0.7 s (up to 1.95 s), a classify answer 0.21 s.
- `fixed`: the same ttft and per-token time at the heavy medians with sigma 0, every answer
  of a task equally long (capped the same way): the comparison without a tail.
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
from typing import Any, NamedTuple

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


# Heavy-tailed lengths (issue 24: "most answers short, a few many times longer"): sigma 1.0
# everywhere, p99/p50 = 10.2 before the cap; shorter medians than the defaults, so that the
# tail shows below max_tokens instead of piling up at it (table in the module docstring).
HEAVY_SIGMA = 1.0
HEAVY_LENGTHS: Mapping[str, LengthDistribution] = MappingProxyType(
    {
        stage: LengthDistribution(median, HEAVY_SIGMA)
        for stage, median in (
            ("bootstrap", 200),
            ("bootstrap_classification", 180),
            ("classify", 2),
            ("instances_generation", 100),
            ("instances_classification", 80),
            ("relabel", 4),
            ("judge_instance", 60),
            ("judge_rating", 50),
            ("judge_pairwise", 50),
            (ANY_STAGE, 100),
        )
    }
)


def fixed_lengths(lengths: Mapping[str, LengthDistribution]) -> dict[str, LengthDistribution]:
    """The same medians with sigma 0: every answer of a task equally long (no tail)."""
    return {stage: LengthDistribution(dist.median, 0.0) for stage, dist in lengths.items()}


LENGTH_PRESETS: Mapping[str, Mapping[str, LengthDistribution]] = MappingProxyType(
    {
        "default": DEFAULT_LENGTHS,
        "heavy": HEAVY_LENGTHS,
        "fixed": MappingProxyType(fixed_lengths(HEAVY_LENGTHS)),
    }
)


def parse_lengths(
    spec: str, base: Mapping[str, LengthDistribution] = DEFAULT_LENGTHS
) -> dict[str, LengthDistribution]:
    """`base` (the default lengths) with `[PRESET,]STAGE=MEDIAN:SIGMA[,...]` over it: a
    preset's name (LENGTH_PRESETS) first replaces the base, then each STAGE=MEDIAN:SIGMA
    replaces a stage's; `*` is any other stage. E.g. "heavy", "heavy,classify=1:0",
    "classify=2:0,instances_generation=250:0.9"."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if parts and parts[0] in LENGTH_PRESETS:
        base = LENGTH_PRESETS[parts.pop(0)]
    lengths = dict(base)
    for part in parts:
        stage, sep, value = part.partition("=")
        median, colon, sigma = value.partition(":")
        try:
            if not (sep and colon and stage.strip()):
                raise ValueError
            lengths[stage.strip()] = LengthDistribution(float(median), float(sigma))
        except ValueError:
            presets = ", ".join(LENGTH_PRESETS)
            raise ValueError(
                f"bad length spec {part!r}: expected STAGE=MEDIAN:SIGMA (after a preset's "
                f"name: {presets})"
            ) from None
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


# Named latency profiles (the server's --profile); the module docstring describes them.
PROFILES: Mapping[str, LatencyModel] = MappingProxyType(
    {
        "default": LatencyModel(),
        "heavy": LatencyModel(ttft=0.2, per_token=0.005, lengths=HEAVY_LENGTHS),
        "fixed": LatencyModel(ttft=0.2, per_token=0.005, lengths=LENGTH_PRESETS["fixed"]),
    }
)


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


class TimelineRow(NamedTuple):
    """One generation request on the timeline: when the server took it and when its answer
    was ready (Unix seconds, so that a benchmark in another process can set them against its
    own clock), its task, its service seconds (fixed latency plus the model's time: what it
    cost a slot), and how it ended. A tuple: it goes out as a JSON list."""

    started: float
    ended: float
    task: str
    service_seconds: float
    outcome: str


TIMELINE_FIELDS = TimelineRow._fields
SERVED, CANCELLED = "ok", "cancelled"


class ServiceLedger:
    """Thread-safe accounting of generation requests: how many are in progress (refusing
    more than `capacity`), how long at least one was (`busy_seconds`), when the last one ended
    (`last_finished_at`, Unix time), how many were answered 200 and 429, and the service time
    and tokens of the answered ones, in total and per stage.

    The timeline keeps one row per request that held a slot for its service time (answered,
    or cancelled by its client), in the order they ended: a benchmark sees from it when each
    stage was working and how many slots were busy meanwhile. A row is one tuple appended
    under the lock the counters take anyway (20,000 requests: about 2 MB)."""

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
        self._timeline: list[TimelineRow] = []

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

    def served(
        self, stage: str, prompts: int, seconds: float, tokens: int, started: float | None = None
    ) -> None:
        """A request answered 200 after `seconds` of service, generating `tokens`; `started`
        (Unix time) when it was admitted, by default `seconds` ago."""
        row = _row(stage, seconds, SERVED, started)
        with self._lock:
            self._status[200] += 1
            self._total.add(prompts, seconds, tokens)
            self._stages.setdefault(stage, _Totals()).add(prompts, seconds, tokens)
            self._timeline.append(row)

    def cancelled(self, stage: str, seconds: float, started: float | None = None) -> None:
        """A request whose client went away after `seconds` of service: the time was spent
        (a server such as vLLM then stops generating), nothing was answered."""
        row = _row(stage, seconds, CANCELLED, started)
        with self._lock:
            self._cancelled += 1
            self._total.service_seconds += seconds
            self._stages.setdefault(stage, _Totals()).service_seconds += seconds
            self._timeline.append(row)

    def timeline(self, since: int = 0) -> list[TimelineRow]:
        """The timeline's rows from the `since`-th on (a poller passes how many it has)."""
        with self._lock:
            return self._timeline[since:]

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


def _row(stage: str, seconds: float, outcome: str, started: float | None) -> TimelineRow:
    """A timeline row ending now (times rounded to microseconds: shorter JSON)."""
    ended = time.time()
    began = ended - seconds if started is None else started
    return TimelineRow(round(began, 6), round(ended, 6), stage, round(seconds, 6), outcome)
