"""The prefix cache patches llama-cpp-python internals only on the release it was tested with;
on any other (or when an internal is missing) it patches nothing, warns once, and reports zero
stats. No model is loaded: the engine is a stand-in with the attributes the cache touches."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from selfinstruct.llm import prefix_cache
from selfinstruct.llm.prefix_cache import (
    TESTED_VERSION,
    PrefixCache,
    PrefixStats,
    unsupported_reason,
)

ROOT = Path(__file__).resolve().parents[1]
OTHER = "0.3.99"


class _Engine:
    """The parts of llama_cpp.Llama the cache reads, calls or replaces."""

    def __init__(self, kv_cache_seq_rm: bool = True) -> None:
        self.n_batch = 512
        self.context_params = SimpleNamespace(n_ubatch=512)
        self.input_ids = np.zeros(64, dtype=np.intc)
        self.n_tokens = 0
        self._requires_eval = True
        self._ctx = SimpleNamespace()
        if kv_cache_seq_rm:
            self._ctx.kv_cache_seq_rm = lambda seq, p0, p1: True

    def eval(self, tokens: list[int]) -> None:
        self.n_tokens += len(tokens)

    def generate(self, tokens: list[int], **kwargs: Any) -> Iterator[int]:
        yield from ()


LIBRARY = SimpleNamespace(
    llama_state_seq_get_size=None, llama_state_seq_get_data=None, llama_state_seq_set_data=None
)


@pytest.fixture(autouse=True)
def _fresh_warning() -> Iterator[None]:
    prefix_cache._warn_once.cache_clear()
    yield
    prefix_cache._warn_once.cache_clear()


def test_the_tested_version_is_the_pinned_one() -> None:
    pins = re.findall(
        r'"llama-cpp-python(?:\[\w+\])?==([^"]+)"', (ROOT / "pyproject.toml").read_text()
    )
    assert pins and set(pins) == {TESTED_VERSION}


def test_the_tested_version_with_every_internal_is_supported() -> None:
    assert unsupported_reason(TESTED_VERSION, _Engine(), LIBRARY) is None


@pytest.mark.parametrize(
    ("version", "engine", "library", "named"),
    [
        (OTHER, _Engine(), LIBRARY, OTHER),
        (None, _Engine(), LIBRARY, "unknown version"),
        (TESTED_VERSION, _Engine(kv_cache_seq_rm=False), LIBRARY, "Llama._ctx.kv_cache_seq_rm"),
        (TESTED_VERSION, _Engine(), SimpleNamespace(), "llama_cpp.llama_state_seq_get_size"),
    ],
)
def test_unsupported_reasons_name_what_is_wrong(
    version: str | None, engine: _Engine, library: Any, named: str
) -> None:
    reason = unsupported_reason(version, engine, library)
    assert reason is not None
    assert named in reason and TESTED_VERSION in reason


def test_another_version_patches_nothing_warns_once_and_keeps_zero_stats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prefix_cache, "installed_version", lambda: OTHER)
    engine = _Engine()
    generate, evaluate = engine.generate, engine.eval
    with pytest.warns(RuntimeWarning) as caught:
        cache = PrefixCache(engine)
    [warning] = caught
    message = str(warning.message)
    assert OTHER in message and TESTED_VERSION in message
    assert "without prefix reuse (slower)" in message
    assert (engine.generate, engine.eval) == (generate, evaluate)
    assert cache.unsupported is not None and not cache.enabled
    cache.enabled = True  # what tests and benchmarks do after a cold comparison
    assert not cache.enabled
    list(engine.generate([1, 2, 3]))
    cache.clear()
    assert cache.stats == PrefixStats()
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        PrefixCache(_Engine())
    assert again == []


def test_a_missing_internal_patches_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefix_cache, "installed_version", lambda: TESTED_VERSION)
    engine = _Engine(kv_cache_seq_rm=False)
    generate = engine.generate
    with pytest.warns(RuntimeWarning, match="kv_cache_seq_rm"):
        cache = PrefixCache(engine)
    assert engine.generate == generate and not cache.enabled


def test_the_tested_version_patches_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefix_cache, "installed_version", lambda: TESTED_VERSION)
    engine = _Engine()
    generate = engine.generate
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache = PrefixCache(engine)
    assert engine.generate != generate and cache.enabled and cache.unsupported is None
    list(engine.generate([1, 2, 3]))
    assert (cache.stats.requests, cache.stats.prompt_tokens) == (1, 3)


@pytest.mark.slow  # a process of its own
def test_the_warning_reaches_stderr_once_per_process() -> None:
    script = "\n".join(
        [
            "import sys; sys.path.insert(0, 'tests')",
            "from test_prefix_cache_version import _Engine",
            "from selfinstruct.llm import prefix_cache",
            f"prefix_cache.installed_version = lambda: {OTHER!r}",
            "for _ in range(3):",
            "    prefix_cache.PrefixCache(_Engine())",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stderr.count("RuntimeWarning") == 1, result.stderr
    assert f"llama-cpp-python {OTHER} is installed" in result.stderr
