"""Turn (instruction, input, output) into prompt/completion text with varied layouts."""

from __future__ import annotations

import random
import re

from selfinstruct.exporters.records import Example, PromptCompletion
from selfinstruct.prompts import FinetuneLayout

_FIELD = re.compile(r"(\w+):")


def augment_input(text: str, rng: random.Random, probability: float) -> str:
    """With the given probability: drop the field name when the input names exactly one
    distinct field ("Sentence: ..."), and turn double newlines into single ones."""
    if not text or rng.random() >= probability:
        return text
    if len(set(_FIELD.findall(text))) == 1:
        text = text.split(":", 1)[1].strip()
    return text.replace("\n\n", "\n")


def encode(
    example: Example, layouts: dict[str, list[FinetuneLayout]], rng: random.Random, end_of_text: str
) -> PromptCompletion:
    kind = "with_input" if example.input.strip() else "without_input"
    layout = rng.choice(layouts[kind])
    values = {
        "instruction": example.instruction.strip(),
        "input": example.input.strip(),
        "output": example.output.strip(),
        "end_of_text": end_of_text,
    }
    return PromptCompletion(layout.prompt.substitute(values), layout.completion.substitute(values))
