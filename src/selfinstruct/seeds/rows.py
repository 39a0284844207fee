"""Build seed tasks from table-like rows (CSV lines, YAML items).

A row has an `instruction` and optionally `input`, `output`, `id`, `name`, `is_classification`,
or a list of `instances`. Rows with the same instruction become one task with several instances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct.errors import InputError
from selfinstruct.seeds.checks import check_unique, require_bool, require_str
from selfinstruct.seeds.task import Instance, SeedTask

KNOWN = {"instruction", "input", "output", "id", "name", "is_classification", "instances"}
TRUE_WORDS = {"true", "yes", "1", "y"}
FALSE_WORDS = {"false", "no", "0", "n", ""}


@dataclass
class _Draft:
    line: int
    id: str
    name: str
    instruction: str
    is_classification: bool
    instances: list[Instance] = field(default_factory=list)


def tasks_from_rows(rows: list[tuple[int, dict]], path: Path) -> list[SeedTask]:
    drafts: dict[str, _Draft] = {}
    for line, row in rows:
        _add_row(drafts, row, path, line)
    tasks = [
        SeedTask(d.id, d.name, d.instruction, tuple(d.instances), d.is_classification)
        for d in drafts.values()
    ]
    check_unique(tasks, [d.line for d in drafts.values()], path)
    return tasks


def _add_row(drafts: dict[str, _Draft], row: dict, path: Path, line: int) -> None:
    unknown = sorted(str(k) for k in row if k not in KNOWN)
    if unknown:
        raise InputError(
            path, f"unknown column (expected {sorted(KNOWN)})", line=line, field=unknown[0]
        )
    if "instruction" not in row:
        raise InputError(path, "missing required field", line=line, field="instruction")
    instruction = require_str(row["instruction"], path, line, "instruction", nonempty=True).strip()
    draft = drafts.get(instruction)
    if draft is None:
        index = len(drafts)
        draft = _Draft(
            line=line,
            id=_optional_str(row, "id", path, line) or f"seed_task_{index}",
            name=_optional_str(row, "name", path, line) or f"task_{index}",
            instruction=instruction,
            is_classification=_flag(row.get("is_classification"), path, line),
        )
        drafts[instruction] = draft
    draft.instances.extend(_instances(row, path, line))


def _instances(row: dict, path: Path, line: int) -> list[Instance]:
    if "instances" in row:
        items = row["instances"]
        if not isinstance(items, list):
            raise InputError(
                path, "expected a list of {input, output}", line=line, field="instances"
            )
        return [_one(item, path, line, f"instances[{i}]") for i, item in enumerate(items)]
    if row.get("input") in (None, "") and row.get("output") in (None, ""):
        return []
    return [_one(row, path, line, "")]


def _one(item: object, path: Path, line: int, where: str) -> Instance:
    prefix = f"{where}." if where else ""
    if not isinstance(item, dict):
        raise InputError(path, "expected an object with input and output", line=line, field=where)
    if where:
        unknown = sorted(str(k) for k in item if k not in ("input", "output"))
        if unknown:
            raise InputError(
                path,
                "unknown key (expected input and output)",
                line=line,
                field=f"{prefix}{unknown[0]}",
            )
    inp = "" if item.get("input") is None else item["input"]
    out = item.get("output")
    if out in (None, ""):
        raise InputError(
            path, "an instance needs a non-empty output", line=line, field=f"{prefix}output"
        )
    return Instance(
        input=require_str(inp, path, line, f"{prefix}input"),
        output=require_str(out, path, line, f"{prefix}output"),
    )


def _optional_str(row: dict, key: str, path: Path, line: int) -> str:
    value = row.get(key)
    if value in (None, ""):
        return ""
    return require_str(value, path, line, key).strip()


def _flag(value: object, path: Path, line: int) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise InputError(
            path, f"expected true or false, got '{value}'", line=line, field="is_classification"
        )
    return require_bool(value, path, line, "is_classification")
