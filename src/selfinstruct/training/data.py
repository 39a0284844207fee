"""Training examples for `selfinstruct finetune`, from a run directory or an exported file.

Rows come out in TRL's prompt-completion form, so the loss can cover the completion only:
text rows {"prompt": str, "completion": str}, or conversational rows {"prompt": [messages],
"completion": [the final assistant message]} for chat data.

- a run directory: its finetuning_data/gpt3_finetuning_data_<N>.jsonl (the paper's
  prompt/completion layouts, with the end-of-text marker);
- prompt-completion JSONL: {"prompt", "completion"} per line;
- OpenAI chat JSONL: {"messages": [...]} per line (the last message must be the assistant's);
- Alpaca JSON (an array) or JSONL with instruction/input/output: laid out with the first
  fine-tuning layout of the templates (finetune.toml).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from selfinstruct.errors import InputError
from selfinstruct.io.jsonl import json_objects, string_field
from selfinstruct.io.text import read_text
from selfinstruct.prompts import TemplateSet

Row = dict[str, Any]


def load_rows(source: Path, templates: TemplateSet, end_of_text: str) -> list[Row]:
    path = resolve_source(source)
    text = read_text(path)
    if path.suffix == ".json":
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise InputError(path, f"invalid JSON: {exc}") from exc
        if not isinstance(items, list):
            raise InputError(path, "expected a JSON array of {instruction, input, output}")
        records = [(index + 1, item) for index, item in enumerate(items)]
        where = "item"
    else:
        records = list(json_objects(text, path))
        where = "line"
    rows = [_row(obj, path, number, where, templates, end_of_text) for number, obj in records]
    if not rows:
        raise InputError(path, "no training examples found")
    kinds = [isinstance(row["prompt"], list) for row in rows]
    if any(kinds) and not all(kinds):
        number = records[kinds.index(not kinds[0])][0]
        raise InputError(
            path,
            "mixes chat messages and prompt/completion text; use one format per file",
            **_at(where, number),
        )
    return rows


def resolve_source(source: Path) -> Path:
    """The file training reads: the source itself, or a run directory's training file."""
    if not source.exists():
        raise InputError(source, "not found")
    if not source.is_dir():
        return source
    found = sorted(
        (source / "finetuning_data").glob("gpt3_finetuning_data_*.jsonl"),
        key=lambda p: int(re.sub(r"\D", "", p.stem) or 0),
    )
    if not found:
        raise InputError(
            source,
            "no finetuning_data/gpt3_finetuning_data_*.jsonl in this "
            "directory; run 'selfinstruct prepare --out DIR' first",
        )
    return found[-1]


def _row(
    obj: Any, path: Path, number: int, where: str, templates: TemplateSet, end_of_text: str
) -> Row:
    if not isinstance(obj, dict):
        raise InputError(path, "expected an object", **_at(where, number))
    if "messages" in obj:
        return _chat_row(obj["messages"], path, number, where)

    def text(key: str, default: str | None = None) -> str:
        return string_field(obj, key, path, default=default, **_at(where, number, key))

    if "prompt" in obj or "completion" in obj:
        return {"prompt": text("prompt"), "completion": text("completion")}
    if "instruction" in obj:
        instruction, given, output = text("instruction"), text("input", ""), text("output")
        layout = templates.finetune_layouts()["with_input" if given else "without_input"][0]
        values = {
            "instruction": instruction,
            "input": given,
            "output": output,
            "end_of_text": end_of_text,
        }
        return {
            "prompt": layout.prompt.substitute(values),
            "completion": layout.completion.substitute(values),
        }
    raise InputError(
        path,
        "expected prompt/completion, messages, or instruction/output fields",
        **_at(where, number),
    )


def _chat_row(messages: Any, path: Path, number: int, where: str) -> Row:
    if not isinstance(messages, list) or len(messages) < 2:
        raise InputError(path, "expected at least two messages", **_at(where, number, "messages"))
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        if (
            not isinstance(message, dict)
            or not isinstance(message.get("content"), str)
            or message.get("role") not in ("system", "user", "assistant")
        ):
            raise InputError(
                path,
                "expected {role: system|user|assistant, content: string}",
                **_at(where, number, field),
            )
    if messages[-1]["role"] != "assistant":
        raise InputError(
            path, "the last message must be the assistant's", **_at(where, number, "messages")
        )
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    return {"prompt": clean[:-1], "completion": clean[-1:]}


def _at(where: str, number: int, field: str | None = None) -> dict[str, Any]:
    """Location keywords for InputError: JSONL lines, or JSON array items as fields."""
    if where == "line":
        return {"line": number, "field": field}
    name = f"[{number - 1}]" + (f".{field}" if field else "")
    return {"field": name}
