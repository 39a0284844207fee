"""Read the paper's intermediate files (machine_generated_instances.jsonl and
is_clf_or_not_*.jsonl) from another run, for stage 4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfinstruct.errors import InputError
from selfinstruct.io.jsonl import json_objects, string_field
from selfinstruct.io.text import read_text
from selfinstruct.parsing.labels import is_yes
from selfinstruct.views.tasks import GeneratedTask


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    return list(json_objects(read_text(path), path))


def read_labels(path: Path) -> dict[str, bool]:
    labels = {}
    for line, obj in _records(path):
        labels[string_field(obj, "instruction", path, line=line)] = is_yes(
            string_field(obj, "is_classification", path, line=line)
        )
    return labels


def finish_reason(metadata: Any) -> str:
    """The finish reason in either shape the paper's files use (or ours)."""
    if not isinstance(metadata, dict):
        return ""
    response = metadata.get("response", metadata)
    if isinstance(response, dict):
        choices = response.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            return str(choices[0].get("finish_reason") or "")
        return str(response.get("finish_reason") or "")
    return ""


def read_tasks(instances_path: Path, labels_path: Path) -> list[GeneratedTask]:
    labels = read_labels(labels_path)
    tasks = []
    for line, obj in _records(instances_path):
        instruction = string_field(obj, "instruction", instances_path, line=line)
        if instruction not in labels:
            raise InputError(
                instances_path,
                f"no label for this instruction in {labels_path}",
                line=line,
                field="instruction",
            )
        tasks.append(
            GeneratedTask(
                instruction=instruction,
                is_classification=labels[instruction],
                raw_instances=string_field(obj, "raw_instances", instances_path, line=line),
                truncated=finish_reason(obj.get("instance_metadata")) == "length",
            )
        )
    if not tasks:
        raise InputError(instances_path, "no instances found")
    return tasks
