"""A deterministic backend for tests and dry runs: no model, instant, varied answers.

Each answer is a pure function of the request (prompt or messages, seed, decoding settings),
so reruns and resumed runs see the same text. Every stage (and evaluation's grader) says how
its answers look (`FakeAnswer`s in its module), in the format and prompt style it asks for,
now and then with the things real models write: too-short or off-limits instructions,
repeats of the examples, preambles, answers cut off at max_tokens. Stop sequences and
max_tokens are applied the way a server applies them.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence

from selfinstruct.llm.backends.fake_text import WordSource
from selfinstruct.llm.base import LLM, Completion, Request
from selfinstruct.llm.fake_answers import (
    FakeAnswer,
    FakeText,
    prompt_text,
    taught,
    taught_for,
)


class FakeLLM(LLM):
    name = "fake"
    supports = frozenset({"completion", "chat", "batch"})  # a stand-in for any server

    @classmethod
    def model_name(cls, model: str, settings: object) -> str:
        return model or "fake-1"

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return [self._answer(request) for request in requests]

    def _answer(self, request: Request) -> Completion:
        if request.task:
            answer = taught_for(request.task) or FakeAnswer(request.task, _generic)
        else:
            answer = _recognise(request)
        text = answer.write(WordSource(random.Random(_digest(request))), request)
        return _finish(text, request)


def _answers() -> list[FakeAnswer]:
    """The answers taught (by the stages and evaluation's grader), the longest (most
    specific) markers first: prompts that quote generated text (a judge's) may contain a
    shorter marker."""
    return sorted(taught(), key=lambda answer: -len(answer.marker))


def _recognise(request: Request) -> FakeAnswer:
    """The kind of a request that arrives without its task (over HTTP), read off the prompt:
    the first answer whose marker it contains, else the one without a marker."""
    text = prompt_text(request)
    for answer in _answers():
        if answer.marker and answer.marker in text:
            return answer
    fallback = [answer for answer in _answers() if not answer.marker]
    return fallback[0] if fallback else FakeAnswer("generic", _generic)


def infer_task(request: Request) -> str:
    """The task a request comes from, read off its prompt."""
    return _recognise(request).task


def _generic(text: FakeText, request: Request) -> str:
    return text.sentence()


def _digest(request: Request) -> str:
    return hashlib.sha256(json.dumps(request.canonical(), sort_keys=True).encode()).hexdigest()


def _finish(text: str, request: Request) -> Completion:
    """Apply stop sequences, then max_tokens (one token per word-ish piece)."""
    cut = min((i for i in (text.find(s) for s in request.stop if s) if i >= 0), default=-1)
    if cut >= 0:
        text = text[:cut]
    pieces = re.findall(r"\s*\S+", text)
    finish = "stop"
    if len(pieces) > request.max_tokens:
        text = "".join(pieces[: request.max_tokens])
        finish = "length"
    return Completion(
        text=text,
        finish_reason=finish,
        prompt_tokens=len(prompt_text(request).split()),
        completion_tokens=min(len(pieces), request.max_tokens),
    )
