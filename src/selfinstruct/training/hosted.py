"""Check a chat fine-tuning file the way OpenAI's fine-tuning service checks uploads.

Errors (the service would reject the file): a line that is not a JSON object, no `messages`
list, a message that is not an object, an unknown key, an unknown role, content that is not a
string, an example without an assistant message, fewer than 10 examples. Warnings: examples
longer than the token limit (the service truncates them), examples without a user message,
duplicate examples. Token counts follow the service's chat accounting (a few tokens per
message plus its content); content tokens come from `tiktoken` when it and its encoding are
available offline, else they are estimated as 1 per 4 bytes of UTF-8 (said in the report).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct.io.text import read_text

ROLES = {"system", "user", "assistant", "tool", "function"}
MESSAGE_KEYS = {"role", "content", "name", "weight", "function_call", "tool_calls", "tool_call_id"}
EXAMPLE_KEYS = {"messages", "tools", "functions", "parallel_tool_calls"}
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_PER_REPLY = 3
MIN_EXAMPLES = 10
DEFAULT_TOKEN_LIMIT = 65_536
TokenCounter = Callable[[str], int]


@dataclass
class Report:
    path: Path
    examples: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    assistant_tokens: list[int] = field(default_factory=list)
    tokenizer: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors


def content_counter() -> tuple[str, TokenCounter]:
    """(description, function text -> tokens) for content."""
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("o200k_base")
        return "tiktoken o200k_base", lambda text: len(encoding.encode(text, disallowed_special=()))
    except Exception:  # not installed, or its encoding cannot be downloaded here
        return (
            "estimated: 1 token per 4 bytes of UTF-8 (tiktoken unavailable)",
            lambda text: math.ceil(len(text.encode("utf-8")) / 4),
        )


def check_chat_file(
    path: Path, token_limit: int = DEFAULT_TOKEN_LIMIT, max_listed: int = 10
) -> Report:
    report = Report(path)
    report.tokenizer, count = content_counter()
    seen: Counter[str] = Counter()
    for number, raw in enumerate(read_text(path).split("\n"), start=1):
        if not raw.strip():
            continue
        report.examples += 1
        problems = _example_problems(raw, number)
        if problems:
            report.errors.extend(problems)
            continue
        messages = json.loads(raw)["messages"]
        tokens = TOKENS_PER_REPLY + sum(_message_tokens(m, count) for m in messages)
        report.tokens.append(tokens)
        report.assistant_tokens.append(
            sum(count(m.get("content") or "") for m in messages if m["role"] == "assistant")
        )
        if tokens > token_limit:
            report.warnings.append(
                f"line {number}: {tokens} tokens, over the {token_limit} "
                "limit; the service truncates it"
            )
        if not any(m["role"] == "user" for m in messages):
            report.warnings.append(f"line {number}: no user message")
        seen[raw.strip()] += 1
    duplicates = sum(n - 1 for n in seen.values() if n > 1)
    if duplicates:
        report.warnings.append(f"{duplicates} duplicate examples")
    if report.examples < MIN_EXAMPLES:
        report.errors.append(
            f"{report.examples} examples; the service needs at least {MIN_EXAMPLES}"
        )
    report.errors = _shorten(report.errors, max_listed)
    report.warnings = _shorten(report.warnings, max_listed)
    return report


def _example_problems(raw: str, number: int) -> list[str]:
    where = f"line {number}"
    try:
        example = json.loads(raw)
    except ValueError as exc:
        return [f"{where}: invalid JSON ({exc})"]
    if not isinstance(example, dict):
        return [f"{where}: expected a JSON object"]
    unknown = set(example) - EXAMPLE_KEYS
    if unknown:
        return [f"{where}, field '{sorted(unknown)[0]}': unknown key"]
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return [f"{where}, field 'messages': missing or empty"]
    problems = []
    for index, message in enumerate(messages):
        field_name = f"messages[{index}]"
        if not isinstance(message, dict):
            problems.append(f"{where}, field '{field_name}': expected an object")
            continue
        unknown = set(message) - MESSAGE_KEYS
        if unknown:
            problems.append(f"{where}, field '{field_name}.{sorted(unknown)[0]}': unknown key")
        if message.get("role") not in ROLES:
            problems.append(
                f"{where}, field '{field_name}.role': unknown role {message.get('role')!r}"
            )
        content = message.get("content")
        if not isinstance(content, str) and not (
            content is None and (message.get("tool_calls") or message.get("function_call"))
        ):
            problems.append(f"{where}, field '{field_name}.content': expected a string")
        if "weight" in message and message.get("weight") not in (0, 1):
            problems.append(f"{where}, field '{field_name}.weight': must be 0 or 1")
    if not problems and not any(m.get("role") == "assistant" for m in messages):
        problems.append(f"{where}, field 'messages': no assistant message")
    return problems


def _message_tokens(message: dict, count: TokenCounter) -> int:
    tokens = TOKENS_PER_MESSAGE + count(message["role"]) + count(message.get("content") or "")
    if "name" in message:
        tokens += TOKENS_PER_NAME + count(str(message["name"]))
    return tokens


def _shorten(items: list[str], limit: int) -> list[str]:
    return items if len(items) <= limit else [*items[:limit], f"... and {len(items) - limit} more"]


def format_report(report: Report, epochs: int = 3) -> str:
    lines = [
        f"{report.path}: {report.examples} examples, "
        + ("OK for upload" if report.ok else f"{len(report.errors)} problems")
    ]
    lines += [f"  error: {e}" for e in report.errors]
    lines += [f"  warning: {w}" for w in report.warnings]
    if report.tokens:
        ordered = sorted(report.tokens)
        total = sum(ordered)
        lines.append(
            f"  tokens per example: min {ordered[0]}, median "
            f"{ordered[len(ordered) // 2]}, max {ordered[-1]} ({report.tokenizer})"
        )
        lines.append(
            f"  tokens in the file: {total:,}; trained over {epochs} epochs: "
            f"about {total * epochs:,} billed tokens"
        )
    return "\n".join(lines)
