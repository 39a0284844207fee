"""A deterministic backend for tests and dry runs: no model, instant, varied answers.

Each answer is a pure function of the request (prompt or messages, seed, decoding settings),
so reruns and resumed runs see the same text. It answers every stage in the format the stage
asks for and in the prompt style used, and now and then writes the things real models write:
too-short or off-limits instructions, repeats of the examples, preambles, and answers cut off
at max_tokens. Stop sequences and max_tokens are applied the way a server applies them.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence

from selfinstruct.llm import fake_words as w
from selfinstruct.llm.base import LLM, Completion, Request


class FakeLLM(LLM):
    name = "fake"

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return [self._answer(request) for request in requests]

    def _answer(self, request: Request) -> Completion:
        rng = random.Random(_digest(request))
        writer = WRITERS.get(request.task or infer_task(request), _write_generic)
        text = writer(rng, request)
        return _finish(text, request)


def infer_task(request: Request) -> str:
    """The stage a request comes from, read off our prompts (for requests that arrive over
    HTTP without our task label)."""
    text = _prompt_text(request)
    if "Preferred: <A, B or tie>" in text:
        return "judge_pairwise"
    if "Rating: <A, B, C or D>" in text:
        return "judge_rating"
    if "Is it classification?" in text:
        return "classify"
    if "Class label:" in text:
        return "instances_classification"
    if "Task:" in text:
        return "instances_generation"
    return "bootstrap"


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
    prompt = request.prompt or " ".join(m[1] for m in request.messages or ())
    return Completion(
        text=text,
        finish_reason=finish,
        prompt_tokens=len(prompt.split()),
        completion_tokens=min(len(pieces), request.max_tokens),
    )


def instruction(rng: random.Random) -> str:
    """A new, plausible instruction; mostly distinct from every other one."""
    verb, form = rng.choice(w.VERBS), rng.choice(w.FORMS)
    adj, topic = rng.choice(w.ADJECTIVES), rng.choice(w.TOPICS)
    audience, rule = rng.choice(w.AUDIENCES), rng.choice(w.CONSTRAINTS)
    shapes = (
        f"{verb} a {adj} {form} about {topic} for {audience}, {rule}.",
        f"{verb} how {topic} could change the daily life of {audience} {rule}.",
        f"As a {form} for {audience}, {verb.lower()} the main ideas behind {topic}.",
        f"Given a {adj} {form} about {topic}, {verb.lower()} it for {audience}.",
        f"What should {audience} know about {topic}? Answer {rule}.",
        f"{verb} three {adj} questions {audience} often ask about {topic}.",
    )
    return rng.choice(shapes)


def _flawed_instruction(rng: random.Random, request: Request) -> str:
    """Something the heuristic or ROUGE-L filters should drop."""
    topic = rng.choice(w.TOPICS)
    options = [
        f"Draw {topic}.",
        f"Describe the image of {topic} below.",
        f"Write a program that sorts {topic}.",
        f'"Quote" something about {topic}.',
        f"Éclair recipe about {topic} for {rng.choice(w.AUDIENCES)}.",
    ]
    shown = re.findall(r"^\s*\d+\.\s*(.+)$", _prompt_text(request), flags=re.M)
    if shown:
        options.append(rng.choice(shown))
    return rng.choice(options)


def _write_bootstrap(rng: random.Random, request: Request) -> str:
    items = []
    for _ in range(rng.randint(5, 9)):
        items.append(instruction(rng) if rng.random() < 0.85 else _flawed_instruction(rng, request))
    if rng.random() < 0.04:
        items.append(" ".join(rng.choice(w.FILLER) for _ in range(request.max_tokens + 5)))
    numbered = [f"{9 + i}. {item}" for i, item in enumerate(items)]
    if request.is_chat:
        preamble = rng.choice(("Here are some new tasks:\n\n", "Sure!\n", ""))
        return preamble + "\n".join(numbered)
    text = " " + "\n".join(numbered)[len("9. "):]
    return text + ("\n\n" if rng.random() < 0.5 else "\n")


def _write_classify(rng: random.Random, request: Request) -> str:
    target = _target_instruction(request)
    yes = any(word in target.lower() for word in ("classify", "rank", "identify", "which"))
    yes = yes or rng.random() < 0.2
    answer = "Yes" if yes else "No"
    return f"{answer}." if request.is_chat else f" {answer}"


def _write_instances_classification(rng: random.Random, request: Request) -> str:
    labels = rng.choice(w.LABEL_SETS)
    field = rng.choice(w.FIELDS)
    blocks = [f"Class label: {label}\n{field}: {_sentence(rng)}" for label in labels]
    return "\n".join(blocks) + "\n\n"


def _write_instances_generation(rng: random.Random, request: Request) -> str:
    if rng.random() < 0.25:
        return f"Output: {_sentence(rng)} {_sentence(rng)}\n\n"
    field = rng.choice(w.FIELDS)
    blocks = []
    for n in range(1, rng.randint(2, 5) + 1):
        blocks.append(f"Example {n}\n{field}: {_sentence(rng)}\nOutput: {_sentence(rng)}")
    if rng.random() < 0.1:
        blocks.append(blocks[-1].replace("Output: ", "Output: Not ", 1))
    return "\n\n".join(blocks) + "\n\n"


def _write_generic(rng: random.Random, request: Request) -> str:
    return _sentence(rng)


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(w.FILLER) for _ in range(rng.randint(5, 14))]
    return " ".join(words).capitalize() + "."


def _prompt_text(request: Request) -> str:
    return request.prompt or "\n".join(m[1] for m in request.messages or ())


def _target_instruction(request: Request) -> str:
    found = re.findall(r"Task:\s*(.+)", _prompt_text(request))
    return found[-1] if found else ""


def _write_judge_rating(rng: random.Random, request: Request) -> str:
    rating = rng.choice("AABBCD")
    return f" {rating}\nReason: {_sentence(rng)}" if request.prompt else (
        f"Rating: {rating}\nReason: {_sentence(rng)}")


def _write_judge_pairwise(rng: random.Random, request: Request) -> str:
    choice = rng.choice(["A", "B", "tie"])
    return f" {choice}\nReason: {_sentence(rng)}" if request.prompt else (
        f"Preferred: {choice}\nReason: {_sentence(rng)}")


WRITERS = {
    "bootstrap": _write_bootstrap,
    "classify": _write_classify,
    "instances_classification": _write_instances_classification,
    "instances_generation": _write_instances_generation,
    "judge_rating": _write_judge_rating,
    "judge_pairwise": _write_judge_pairwise,
}
