"""Evaluation tasks in the paper's user-oriented format: one JSON object per line with
`id`, `motivation_app`, `instruction` and `instances` (a list of `input`/`output` pairs)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from selfinstruct.errors import InputError
from selfinstruct.io.jsonl import json_objects, string_field
from selfinstruct.io.text import read_text


@dataclass(frozen=True)
class EvalTask:
    """One instance of one task (a task with several instances gives several EvalTasks)."""

    id: str
    motivation_app: str
    instruction: str
    input: str
    reference: str


def default_tasks_path() -> Path:
    return Path(str(resources.files("selfinstruct") / "data" / "eval_tasks.jsonl"))


def read_tasks(path: Path | None = None) -> list[EvalTask]:
    path = path or default_tasks_path()
    tasks: list[EvalTask] = []
    seen: set[str] = set()
    for line, obj in json_objects(read_text(path), path):
        task_id = string_field(obj, "id", path, line=line)
        if task_id in seen:
            raise InputError(path, f"duplicate id '{task_id}'", line=line, field="id")
        seen.add(task_id)
        app = obj.get("motivation_app", "")
        if not isinstance(app, str):
            raise InputError(path, "expected a string", line=line, field="motivation_app")
        instruction = string_field(obj, "instruction", path, line=line)
        if not instruction.strip():
            raise InputError(path, "empty instruction", line=line, field="instruction")
        instances = obj.get("instances")
        if not isinstance(instances, list) or not instances:
            raise InputError(
                path, "expected a non-empty list of {input, output}", line=line, field="instances"
            )
        for index, instance in enumerate(instances):
            where = f"instances[{index}]"
            if not isinstance(instance, dict):
                raise InputError(path, "expected an object", line=line, field=where)
            tasks.append(
                EvalTask(
                    id=task_id if len(instances) == 1 else f"{task_id}#{index}",
                    motivation_app=app,
                    instruction=instruction,
                    input=string_field(
                        instance, "input", path, line=line, field=f"{where}.input", default=""
                    ),
                    reference=string_field(
                        instance, "output", path, line=line, field=f"{where}.output"
                    ),
                )
            )
    if not tasks:
        raise InputError(path, "no evaluation tasks found")
    return tasks
