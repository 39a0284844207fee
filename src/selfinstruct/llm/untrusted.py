"""Model output is untrusted text: make it storable without changing anything storable.

A server can send any JSON string, including lone UTF-16 surrogates ("\\ud800"), which are
not Unicode characters and cannot be written as UTF-8 (SQLite, files). They become U+FFFD,
the replacement character. Everything else, control characters, NUL, text that looks like
our own markers or JSON, is kept exactly as sent; the writers escape it.
"""

from __future__ import annotations

import dataclasses
import re

from selfinstruct.llm.base import Completion

_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def storable(text: str) -> str:
    if text.isascii():  # the usual case, known at once: no surrogate in it
        return text
    return _SURROGATE.sub(REPLACEMENT, text)


def storable_completion(completion: Completion) -> Completion:
    text, reason = storable(completion.text), storable(completion.finish_reason)
    if text is completion.text and reason is completion.finish_reason:
        return completion
    return dataclasses.replace(completion, text=text, finish_reason=reason)
