"""Parse the instance stage's raw text into (input, output) pairs.

Classification tasks (output first): the text is split on "Class label:"; in each piece the
first line is the label (the output) and the rest is the input. Other tasks (input first): the
text is split on "Example <n>"; in each piece what precedes "Output <n>:" is the input (minus a
leading "Input <n>:") and what follows is the output, cut at a later "Input <n>:". Without an
"Example" marker but with an "Output:" the whole text is one instance; with neither, nothing.
A response cut off at max_tokens loses its last instance.
"""

from __future__ import annotations

import re

Pair = tuple[str, str]

_EXAMPLE = re.compile(r"Example\s?\d+\s?\.?")
_OUTPUT = re.compile(r"Output\s*\d*\s*:")
_INPUT = re.compile(r"Input\s*\d*\s*:")
_LEADING_INPUT = re.compile(r"^Input\s*\d*\s*:")
_CLASS_LABEL = "Class label:"


def parse_classification(text: str, truncated: bool) -> list[Pair]:
    if _CLASS_LABEL not in text:
        return []
    pairs = []
    for piece in text.split(_CLASS_LABEL)[1:]:
        label, _, rest = piece.strip().partition("\n")
        pairs.append((rest.strip(), label.strip()))
    return pairs[:-1] if truncated else pairs


def parse_generation(text: str, truncated: bool) -> list[Pair]:
    if _EXAMPLE.search(text):
        pieces = [p for p in _EXAMPLE.split(text)[1:] if p.strip()]
        pairs = [_input_output(p) for p in pieces]
    elif _OUTPUT.search(text):
        pairs = [_input_output(text)]
    else:
        return []
    return pairs[:-1] if truncated else pairs


def _input_output(piece: str) -> Pair:
    parts = _OUTPUT.split(piece)
    before, output = (parts[0], parts[1]) if len(parts) > 1 else ("", piece)
    output = _INPUT.split(output, maxsplit=1)[0].strip()
    return _LEADING_INPUT.sub("", before.strip()).strip(), output


_RESTATED_TASK = re.compile(r"^\s*Task:[^\n]*\n?")
_BOLD_MARKER = re.compile(
    r"(?:\*\*|__)(?P<word>Example\s?\d+|Output\s*\d*|Input\s*\d*|Class label|Task)"
    r"(?P<colon>\s*:?)(?:\*\*|__)"
)
_EXAMPLE_COLON = re.compile(r"^(\s*Example\s?\d+)\s*:", re.MULTILINE)


def strip_markdown(text: str) -> str:
    """Remove bold markers around our structural words only ("**Output:**", "__Example 2__")."""
    return _BOLD_MARKER.sub(r"\g<word>\g<colon>", text)


def tidy_chat(text: str) -> str:
    """Chat answers: bold markers around our markers removed, "Example 1:" read as
    "Example 1", and a restated "Task: ..." first line dropped."""
    text = _EXAMPLE_COLON.sub(r"\1", strip_markdown(text))
    return _RESTATED_TASK.sub("", text, count=1)


def parse_instances(text: str, truncated: bool, is_classification: bool, style: str) -> list[Pair]:
    if style == "chat":
        text = tidy_chat(text)
    parse = parse_classification if is_classification else parse_generation
    return parse(text, truncated)
