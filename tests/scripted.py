"""A fake model with some stages' answers replaced, served over real HTTP, and the command
that runs the pipeline against it (for tests of what a run reports)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from conftest import cli

from selfinstruct.llm.backends.fake import FakeLLM, infer_task
from selfinstruct.llm.base import Completion, Request

Writer = Callable[[Request], Completion]
FAST = "[openai]\nmax_attempts = 1\nbackoff_base = 0.01\ntimeout = 10.0\n"


class ScriptedLLM(FakeLLM):
    """FakeLLM, except for the stages given a writer ("bootstrap", "classify",
    "instances_generation", ...): those answers come from the writer."""

    def __init__(self, **writers: Writer) -> None:
        super().__init__(model="fake")
        self.writers = writers

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        answers = []
        for request in requests:
            writer = self.writers.get(infer_task(request))
            answers += [writer(request)] if writer else super().generate([request])
        return answers


def answer(text: str, finish_reason: str = "stop", tokens: int = 0) -> Completion:
    return Completion(
        text=text,
        finish_reason=finish_reason,
        prompt_tokens=100,
        completion_tokens=tokens or max(1, len(text.split())),
    )


def run_against(
    server_url: str,
    out: Path,
    *args: str,
    config: str = "",
    command: str = "run",
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """`selfinstruct COMMAND --out OUT` over --backend openai against a local server."""
    settings = out.parent / f"{out.name}.toml"
    settings.write_text(FAST + config, encoding="utf-8")
    return cli(
        command,
        "--out",
        str(out),
        "--backend",
        "openai",
        "--base-url",
        server_url,
        "--model",
        "fake",
        "--config",
        str(settings),
        *args,
        check=False,
        timeout=timeout,
    )
