"""Tokenizers for ROUGE-L.

`rouge` reproduces the `rouge_score` package's default tokenizer exactly (lower-case, runs of
[a-z0-9] are tokens, no stemming). `unicode` is an opt-in alternative for non-English seeds:
NFKC + case folding; runs of letters, digits and combining marks in any script are tokens;
characters of scripts written without spaces (Chinese, Japanese, Thai, ...) are one token
each (with the marks that follow them).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

Tokenizer = Callable[[str], list[str]]

_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")
_UNSPACED = re.compile(
    "["
    "\u0e00-\u0e7f"  # Thai
    "\u0e80-\u0eff"  # Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs
    "\U00020000-\U0002fa1f"
    "]"
)


def rouge_tokens(text: str) -> list[str]:
    return _ROUGE_TOKEN.findall(text.lower())


def unicode_tokens(text: str) -> list[str]:
    tokens: list[str] = []
    current: list[str] = []
    for char in unicodedata.normalize("NFKC", text).casefold():
        kind = unicodedata.category(char)[0]
        if kind == "M" and current:
            current.append(char)
        elif kind in "LN" and not _UNSPACED.match(char):
            if current and _UNSPACED.match(current[0]):
                tokens.append("".join(current))
                current = []
            current.append(char)
        else:
            if current:
                tokens.append("".join(current))
            current = [char] if kind in "LN" else []
    if current:
        tokens.append("".join(current))
    return tokens


TOKENIZERS: dict[str, Tokenizer] = {"rouge": rouge_tokens, "unicode": unicode_tokens}


def get_tokenizer(name: str) -> Tokenizer:
    try:
        return TOKENIZERS[name]
    except KeyError:
        raise ValueError(f"unknown tokenizer '{name}' (known: {', '.join(TOKENIZERS)})") from None
