"""The paper's seed format: JSON Lines with id, name, instruction, instances, is_classification."""

from __future__ import annotations

from pathlib import Path

from selfinstruct.errors import InputError
from selfinstruct.io.jsonl import json_objects
from selfinstruct.seeds.checks import check_unique, require_bool, require_str
from selfinstruct.seeds.task import Instance, SeedTask

REQUIRED = ("id", "name", "instruction", "instances", "is_classification")


def parse_jsonl(text: str, path: Path) -> list[SeedTask]:
    tasks: list[SeedTask] = []
    lines: list[int] = []
    for number, obj in json_objects(text, path):
        tasks.append(_parse_task(obj, path, number))
        lines.append(number)
    check_unique(tasks, lines, path)
    return tasks


def _parse_task(obj: dict, path: Path, line: int) -> SeedTask:
    for name in REQUIRED:
        if name not in obj:
            raise InputError(path, "missing required field", line=line, field=name)
    instances = obj["instances"]
    if not isinstance(instances, list):
        raise InputError(path, "expected a list of {input, output}", line=line, field="instances")
    parsed = tuple(_instance(item, path, line, i) for i, item in enumerate(instances))
    return SeedTask(
        id=require_str(obj["id"], path, line, "id", nonempty=True),
        name=require_str(obj["name"], path, line, "name"),
        instruction=require_str(obj["instruction"], path, line, "instruction", nonempty=True),
        instances=parsed,
        is_classification=require_bool(obj["is_classification"], path, line, "is_classification"),
    )


def _instance(item: object, path: Path, line: int, index: int) -> Instance:
    where = f"instances[{index}]"
    if not isinstance(item, dict):
        raise InputError(path, "expected an object with input and output", line=line, field=where)
    for key in ("input", "output"):
        if key not in item:
            raise InputError(path, "missing required field", line=line, field=f"{where}.{key}")
    return Instance(
        input=require_str(item["input"], path, line, f"{where}.input"),
        output=require_str(item["output"], path, line, f"{where}.output"),
    )
