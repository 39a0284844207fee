"""Parse the instance stage's raw text into (input, output) pairs.

Classification tasks (output first): the text is split on "Class label:"; in each piece the
first line is the label (the output) and the rest is the input. Other tasks (input first): the
text is split on "Example <n>"; in each piece what precedes "Output <n>:" is the input (minus a
leading "Input <n>:") and what follows is the output, up to a later "Output <n>:" or
"Input <n>:". Without an "Example" marker but with an "Output:" the whole text is one
instance; with neither, nothing. A response cut off at max_tokens loses its last instance.

A marker counts only where the template puts it: at the start of a line (after optional
spaces or tabs) and outside a fenced code block. So "# Output: True" in generated code, or
'He said "Output: none"' in an input, is text, not structure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

Pair = tuple[str, str]

_LINE_START = r"(?m:^)[ \t]*"
_EXAMPLE = re.compile(_LINE_START + r"Example[ \t]?\d+(?:[ \t]?[.:])?(?=\s|$)")
_OUTPUT = re.compile(_LINE_START + r"Output[ \t]*\d*[ \t]*:")
_INPUT = re.compile(_LINE_START + r"Input[ \t]*\d*[ \t]*:")
_LEADING_INPUT = re.compile(r"^Input\s*\d*\s*:")
_CLASS_LABEL = re.compile(_LINE_START + r"Class label:")
# A code fence: ``` anywhere (models open one right after "Output:"), ~~~ at a line start.
_FENCE = re.compile(r"```|(?m:^)[ \t]*(~~~)")


def _fenced(text: str) -> list[tuple[int, int]]:
    """Spans of fenced code blocks (an unclosed fence runs to the end of the text)."""
    spans, start, opener = [], None, ""
    for match in _FENCE.finditer(text):
        fence = match.group(1) or match.group(0)
        if start is None:
            start, opener = match.start(), fence
        elif fence == opener:
            spans.append((start, match.end()))
            start = None
    if start is not None:
        spans.append((start, len(text)))
    return spans


def _markers(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """Matches of a marker pattern that lie outside fenced code blocks."""
    fences = _fenced(text)
    for match in pattern.finditer(text):
        if not any(a <= match.start() < b for a, b in fences):
            yield match


def _split(pattern: re.Pattern[str], text: str) -> list[str]:
    """Like `pattern.split(text)`, counting only real markers (see `_markers`)."""
    pieces, last = [], 0
    for match in _markers(pattern, text):
        pieces.append(text[last : match.start()])
        last = match.end()
    pieces.append(text[last:])
    return pieces


def parse_classification(text: str, truncated: bool) -> list[Pair]:
    pieces = _split(_CLASS_LABEL, text)
    pairs = []
    for piece in pieces[1:]:
        label, _, rest = piece.strip().partition("\n")
        pairs.append((rest.strip(), label.strip()))
    return pairs[:-1] if truncated else pairs


def parse_generation(text: str, truncated: bool) -> list[Pair]:
    examples = _split(_EXAMPLE, text)
    if len(examples) > 1:
        pairs = [_input_output(p) for p in examples[1:] if p.strip()]
    elif len(_split(_OUTPUT, text)) > 1:
        pairs = [_input_output(text)]
    else:
        return []
    return pairs[:-1] if truncated else pairs


def _input_output(piece: str) -> Pair:
    parts = _split(_OUTPUT, piece)
    before, output = (parts[0], parts[1]) if len(parts) > 1 else ("", piece)
    output = _split(_INPUT, output)[0].strip()
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
