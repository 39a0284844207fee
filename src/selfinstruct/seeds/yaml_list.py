"""YAML seed format: a list of mappings with instruction, input, output (or instances)."""

from __future__ import annotations

from pathlib import Path

import yaml

from selfinstruct.errors import InputError
from selfinstruct.seeds.rows import tasks_from_rows
from selfinstruct.seeds.task import SeedTask


def parse_yaml(text: str, path: Path) -> list[SeedTask]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise InputError(path, "file is empty")
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(path, f"invalid YAML: {problem}", line=line) from exc
    finally:
        loader.dispose()
    if not isinstance(data, list) or not isinstance(node, yaml.SequenceNode):
        raise InputError(path, "expected a list of tasks at the top level", line=1)
    rows: list[tuple[int, dict]] = []
    for item_node, item in zip(node.value, data, strict=True):
        line = item_node.start_mark.line + 1
        if not isinstance(item, dict):
            raise InputError(path, "expected a mapping with an 'instruction' key", line=line)
        rows.append((line, item))
    return tasks_from_rows(rows, path)
