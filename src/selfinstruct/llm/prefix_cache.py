"""Prefix reuse for the embedded backend: snapshots of llama.cpp's KV cache per shared prompt
prefix, restored before a request that starts with one.

The classify and instances prompts all start with a long fixed few-shot block (700-1250
tokens), and evaluating it is most of the work of a request. llama-cpp-python already keeps the
common prefix with the previous prompt, which helps only while consecutive requests use the
same template: the instances stage alternates between its two templates, and every other stage
in between throws the prefix away. `PrefixCache` keeps a snapshot of the evaluated KV cache of
each shared prefix it sees (found by comparing each prompt's tokens with recent prompts, so it
needs no knowledge of the templates) and restores it before a request that starts with it; only
the rest of the prompt is evaluated. A snapshot is the KV cache of sequence 0
(`llama_state_seq_get_data`: about 23 KB per token for SmolLM2-135M), restored in a few
milliseconds.

It works by patching llama-cpp-python internals (`Llama.generate` and `Llama.eval`, `n_tokens`,
`input_ids`, `_requires_eval`, `_ctx.kv_cache_seq_rm`, the `llama_state_seq_*` functions),
which a new release may change without notice. So it records the version it was written and
tested for and, on any other version or when an internal is missing, patches nothing: the
backend then generates as plain llama-cpp-python does, and one warning says so.
"""

from __future__ import annotations

import ctypes
import functools
import warnings
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np

# The llama-cpp-python release the patches below were written and tested for (the package pins
# it in pyproject.toml; tests/test_prefix_cache_version.py keeps the two equal).
TESTED_VERSION = "0.3.36"
# What the cache reads, calls or replaces on a `llama_cpp.Llama` and on the `llama_cpp` module.
ENGINE_NEEDS = (
    "generate",
    "eval",
    "n_tokens",
    "input_ids",
    "_requires_eval",
    "n_batch",
    "context_params.n_ubatch",
    "_ctx.kv_cache_seq_rm",
)
LIBRARY_NEEDS = ("llama_state_seq_get_size", "llama_state_seq_get_data", "llama_state_seq_set_data")


def installed_version() -> str | None:
    """The installed llama-cpp-python version, None when its metadata cannot be found."""
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return None


def unsupported_reason(version: str | None, engine: Any, library: Any) -> str | None:
    """Why the prefix cache must not patch `engine` (a `llama_cpp.Llama`) with `library` (the
    `llama_cpp` module) at llama-cpp-python `version`; None when it may."""
    found = version or "(unknown version)"
    if version != TESTED_VERSION:
        return (
            f"llama-cpp-python {found} is installed, but the prefix cache was written and "
            f"tested for {TESTED_VERSION}"
        )
    missing = [f"Llama.{name}" for name in ENGINE_NEEDS if not _has(engine, name)]
    missing += [f"llama_cpp.{name}" for name in LIBRARY_NEEDS if not _has(library, name)]
    if missing:
        return (
            f"llama-cpp-python {found} lacks {', '.join(missing)}, which the prefix cache "
            f"(written and tested for {TESTED_VERSION}) needs"
        )
    return None


def _has(obj: Any, dotted: str) -> bool:
    for name in dotted.split("."):
        if not hasattr(obj, name):
            return False
        obj = getattr(obj, name)
    return True


@functools.cache
def _warn_once(reason: str) -> None:
    """Say once per process (per reason) that runs will be slower, and why."""
    warnings.warn(
        f"{reason}; it is turned off: generation works without prefix reuse (slower).",
        RuntimeWarning,
        stacklevel=2,
    )


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest common prefix of two token arrays."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


@dataclass
class PrefixStats:
    """What the prefix cache did (all counts since the engine was created)."""

    requests: int = 0
    prompt_tokens: int = 0  # tokens of every prompt
    prompt_tokens_evaluated: int = 0  # prompt tokens llama.cpp actually computed
    snapshots_saved: int = 0
    snapshots_restored: int = 0
    snapshot_bytes: int = 0  # held now

    @property
    def prompt_tokens_reused(self) -> int:
        return self.prompt_tokens - self.prompt_tokens_evaluated


@dataclass
class _Snapshot:
    tokens: np.ndarray
    state: Any  # ctypes array holding llama_state_seq_get_data's bytes
    size: int


class PrefixCache:
    """Snapshots of the evaluated KV cache for prompt prefixes shared between requests.

    Hooked into `Llama.generate` (which every completion, chat or not, goes through) so it
    sees the exact prompt tokens. Before a prompt is evaluated:

    1. if a snapshot shares a longer prefix with the prompt than the engine's live state
       does, the snapshot is loaded (and cut to the shared part);
    2. if the prompt shares at least `min_tokens` tokens with a recent prompt and no snapshot
       covers that prefix yet, the engine is brought to exactly that prefix (evaluating
       what is missing) and a snapshot of it is taken;
    3. a prompt like no recent one (the first of its template) is evaluated up to its last
       token and kept "on probation" (at most `probation` such snapshots, the oldest
       dropped first); a later prompt that shares `min_tokens` with it promotes it. So only
       the first request of each template evaluates the few-shot block, and one-off prompts
       (bootstrap's) never push out the snapshots in use.

    llama-cpp-python then evaluates only the rest of the prompt, as it always does when its
    state already holds a prefix. The KV entries of a prefix depend only on that prefix, so a
    request computes what a cold evaluation would (tests/test_embedded_prefix.py checks that
    greedy outputs are identical).

    `unsupported` says why the cache is off for this llama-cpp-python (see
    `unsupported_reason`), None when it works.
    """

    def __init__(
        self,
        engine: Any,
        *,
        enabled: bool = True,
        min_tokens: int = 64,
        max_snapshots: int = 8,
        probation: int = 4,
        max_bytes: int = 1 << 30,
        history: int = 16,
    ) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.engine = engine
        self.unsupported = unsupported_reason(installed_version(), engine, llama_cpp)
        self.enabled = enabled
        self.min_tokens = min_tokens
        self.max_snapshots = max_snapshots
        self.max_probation = probation
        self.max_bytes = max_bytes
        self.stats = PrefixStats()
        self._snapshots: OrderedDict[int, _Snapshot] = OrderedDict()  # confirmed, LRU order
        self._probation: OrderedDict[int, _Snapshot] = OrderedDict()
        self._recent: deque[np.ndarray] = deque(maxlen=history)
        self._next_id = 0
        self._in_prompt = False
        # Leading tokens of the engine's state that were computed in steps of two or more
        # tokens, as a cold evaluation computes them (see _hand_over).
        self._clean = 0
        if self.unsupported is not None:
            _warn_once(self.unsupported)
            return
        self._n_ubatch = int(engine.context_params.n_ubatch)
        self._generate = engine.generate
        self._eval = engine.eval
        engine.generate = self._hooked_generate
        engine.eval = self._hooked_eval

    @property
    def enabled(self) -> bool:
        """Whether snapshots are taken and restored: as set, and never when `unsupported`
        (then nothing is patched, and the stats stay zero)."""
        return self._enabled and self.unsupported is None

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = value

    # -- hooks -------------------------------------------------------------------------------

    def _hooked_generate(self, tokens: Sequence[int], *args: Any, **kwargs: Any) -> Iterator[int]:
        tokens = list(tokens)
        if kwargs.get("reset", True):
            self.stats.requests += 1
            self.stats.prompt_tokens += len(tokens)
            if self.enabled and len(tokens) > 1:
                self.prepare(np.asarray(tokens, dtype=np.intc))
                # What llama-cpp-python evaluates next: tokens[n_tokens:], then one token
                # per generated token; reusable later are the tokens before any one-token step.
                singles = self._single_steps(self.engine.n_tokens, len(tokens))
                self._clean = singles[0] if singles else len(tokens)
            else:
                self._clean = 0
            self._in_prompt = True
        else:
            self._clean = min(self._clean, self.engine.n_tokens)
        try:
            return (yield from self._generate(tokens, *args, **kwargs))
        finally:
            self._in_prompt = False

    def _hooked_eval(self, tokens: Sequence[int]) -> None:
        if self._in_prompt:  # the first eval of a generate call is the rest of its prompt
            self._in_prompt = False
            self.stats.prompt_tokens_evaluated += len(tokens)
        self._eval(tokens)

    # -- the cache ---------------------------------------------------------------------------

    def prepare(self, tokens: np.ndarray) -> None:
        """Make the engine hold the longest reusable prefix of `tokens` (see the class)."""
        engine, n = self.engine, len(tokens)
        live = min(_common_prefix(engine.input_ids[: engine.n_tokens], tokens), self._clean)
        best, covered = self._best(tokens)
        if best is not None and covered >= self.min_tokens and best in self._probation:
            self._snapshots[best] = self._probation.pop(best)
            self._evict()
        # Loading costs a copy of the snapshot: worth it for a few dozen tokens or more.
        if best is not None and covered - live >= min(32, self.min_tokens):
            have = self._restore(best, covered)
        else:
            have = live
            self._truncate(have)
        shared = max((_common_prefix(r, tokens) for r in self._recent), default=0)
        shared = min(shared, n - 1)
        self._recent.append(tokens)
        target, probation = None, False
        if shared >= self.min_tokens:
            if shared - covered >= self.min_tokens:  # not held by a snapshot yet
                target = shared
        elif covered < self.min_tokens and n - 1 >= self.min_tokens:
            target, probation = n - 1, True
        if target is not None:
            have = self._extend(tokens, have, target)
            self._save(tokens[:have], probation)
        self._hand_over(tokens, have)

    def _hand_over(self, tokens: np.ndarray, have: int) -> None:
        """Leave llama-cpp-python a rest of the prompt whose evaluation steps match a cold
        evaluation's: llama.cpp computes a one-token step with other kernels than a longer
        one (the logits differ in the last bits, enough to flip a greedy choice now and
        then), while steps of two or more tokens give the same numbers however the prompt is
        cut. A cold evaluation has a one-token step only at the end (a prompt of k * n_ubatch
        + 1 tokens), so the rest must end the same way, and no reused token may come from a
        one-token step."""
        n = len(tokens)
        cold = self._single_steps(0, n)

        def same_as_cold(k: int) -> bool:
            return not any(p < k for p in cold) and self._single_steps(k, n) == [
                p for p in cold if p >= k
            ]

        if cold and cold[-1] == n - 1 and same_as_cold(n - 1):
            have = self._extend(tokens, have, n - 1)
            k = n - 1
        else:
            k = min(have, n - 1)
            while k > 0 and not same_as_cold(k):
                k -= 1
        self._truncate(k)

    def _single_steps(self, start: int, end: int) -> list[int]:
        """Positions that `Llama.eval(tokens[start:end])` computes in a one-token step: it
        cuts the tokens into n_batch pieces and llama.cpp each piece into n_ubatch steps."""
        n_batch, n_ubatch = self.engine.n_batch, self._n_ubatch
        singles = []
        for b0 in range(start, end, n_batch):
            b1 = min(end, b0 + n_batch)
            singles += [u0 for u0 in range(b0, b1, n_ubatch) if min(b1, u0 + n_ubatch) == u0 + 1]
        return singles

    def _extend(self, tokens: np.ndarray, have: int, target: int) -> int:
        """Evaluate tokens[have:target] (the engine holds tokens[:have]) in steps of two or
        more tokens; returns how many tokens the engine holds."""
        if target <= have:
            return have
        if target - have == 1 and have > 0:  # step back a token rather than decode one alone
            have -= 1
            self._truncate(have)
        if target - have < 2:
            return have
        step = max(2, self._n_ubatch)
        sizes = [step] * ((target - have) // step)
        rest = (target - have) % step
        if rest == 1:
            sizes[-1] -= 1
            rest = 2
        if rest:
            sizes.append(rest)
        for size in sizes:
            self._eval(tokens[have : have + size].tolist())
            self.stats.prompt_tokens_evaluated += size
            have += size
        return have

    def _best(self, tokens: np.ndarray) -> tuple[int | None, int]:
        """The snapshot sharing the longest prefix with tokens, and that length."""
        best, covered = None, 0
        for pool in (self._snapshots, self._probation):
            for snap_id, snap in pool.items():
                length = _common_prefix(snap.tokens, tokens)
                if length > covered:
                    best, covered = snap_id, length
        return best, covered

    def _truncate(self, n_tokens: int) -> None:
        engine = self.engine
        if n_tokens < engine.n_tokens:
            engine._ctx.kv_cache_seq_rm(0, n_tokens, -1)
            engine.n_tokens = n_tokens
        engine._requires_eval = True  # the logits are not those of position n_tokens - 1

    def _save(self, tokens: np.ndarray, probation: bool) -> None:
        lib, ctx = self._lib, self.engine._ctx.ctx
        size = lib.llama_state_seq_get_size(ctx, 0)
        state = (ctypes.c_uint8 * size)()
        written = lib.llama_state_seq_get_data(ctx, state, size, 0)
        if written == 0 or written > size:
            return
        pool = self._probation if probation else self._snapshots
        pool[self._next_id] = _Snapshot(tokens.copy(), state, written)
        self._next_id += 1
        self.stats.snapshots_saved += 1
        self._evict()

    def _evict(self) -> None:
        while len(self._probation) > self.max_probation:
            self._probation.popitem(last=False)
        while len(self._snapshots) > self.max_snapshots:
            self._snapshots.popitem(last=False)
        while self._held() > self.max_bytes and len(self._snapshots) + len(self._probation) > 1:
            (self._probation or self._snapshots).popitem(last=False)
        self.stats.snapshot_bytes = self._held()

    def _held(self) -> int:
        return sum(s.size for pool in (self._snapshots, self._probation) for s in pool.values())

    def _restore(self, snap_id: int, n_tokens: int) -> int:
        """Load a snapshot into sequence 0 and keep its first n_tokens; returns the number of
        tokens the engine holds afterwards."""
        engine = self.engine
        pool = self._snapshots if snap_id in self._snapshots else self._probation
        snap = pool[snap_id]
        pool.move_to_end(snap_id)
        engine._ctx.kv_cache_seq_rm(0, 0, -1)
        engine.n_tokens = 0
        engine._requires_eval = True
        if self._lib.llama_state_seq_set_data(engine._ctx.ctx, snap.state, snap.size, 0) == 0:
            engine._ctx.kv_cache_seq_rm(0, 0, -1)  # not loaded: evaluate from scratch
            return 0
        length = len(snap.tokens)
        engine.input_ids[:length] = snap.tokens
        engine.n_tokens = length
        self._truncate(n_tokens)
        self.stats.snapshots_restored += 1
        return engine.n_tokens

    def clear(self) -> None:
        self._snapshots.clear()
        self._probation.clear()
        self._recent.clear()
        self.stats.snapshot_bytes = 0
