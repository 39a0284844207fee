"""A fake model with some stages' answers replaced, served over real HTTP, and the command
that runs the pipeline against it (for tests of what a run reports)."""

from __future__ import annotations

import subprocess
import threading
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


class Crowd(FakeLLM):
    """The fake model behind a server that holds each request until `size` are held at once
    (or all `total` have come): it answers only a client that has that many in flight. A
    client that never gets there fails its requests after `patience` seconds (a hang
    guard, not a measurement). `groups`: how many were let go together, in order."""

    def __init__(self, size: int, total: int, patience: float = 60.0, model: str = "fake") -> None:
        super().__init__(model=model)
        self.size, self.total, self.patience = size, total, patience
        self.arrived = 0
        self.held = 0
        self.groups: list[int] = []
        self._released = threading.Condition()

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        with self._released:
            self.arrived += 1
            self.held += 1
            group = len(self.groups)
            if self.held >= self.size or self.arrived >= self.total:
                self.groups.append(self.held)
                self.held = 0
                self._released.notify_all()
            elif not self._released.wait_for(lambda: len(self.groups) > group, self.patience):
                raise RuntimeError(f"only {self.held} requests in flight, not {self.size}")
        return super().generate(requests)


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
