"""YAML seed format: a list of mappings with instruction, input, output (or instances)."""

from __future__ import annotations

from pathlib import Path

import yaml

from selfinstruct.errors import InputError
from selfinstruct.seeds.rows import tasks_from_rows
from selfinstruct.seeds.task import SeedTask


class _Located(Exception):
    """A problem found while building a value, with the line of its YAML node."""

    def __init__(self, message: str, line: int, field: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.field = field


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses repeated keys and locates bad values (dates, huge ints)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _Located(
                    "key appears twice in one mapping", key_node.start_mark.line + 1, str(key)
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> object:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:
            raise _Located(f"invalid value: {str(exc)[:120]}", node.start_mark.line + 1) from exc


def parse_yaml(text: str, path: Path) -> list[SeedTask]:
    node, data = _load(text, path)
    if not isinstance(data, list) or not isinstance(node, yaml.SequenceNode):
        raise InputError(path, "expected a list of tasks at the top level", line=1)
    rows: list[tuple[int, dict]] = []
    for item_node, item in zip(node.value, data, strict=True):
        line = item_node.start_mark.line + 1
        if not isinstance(item, dict):
            raise InputError(path, "expected a mapping with an 'instruction' key", line=line)
        rows.append((line, item))
    return tasks_from_rows(rows, path)


def _load(text: str, path: Path) -> tuple[yaml.Node, object]:
    loader = None
    try:
        loader = _StrictLoader(text)
        node = loader.get_single_node()
        if node is None:
            raise InputError(path, "file is empty")
        return node, loader.construct_document(node)
    except _Located as exc:
        raise InputError(path, str(exc), line=exc.line, field=exc.field) from exc
    except yaml.YAMLError as exc:
        raise InputError(path, f"invalid YAML: {_problem(exc)}", line=_line(exc, text)) from exc
    except RecursionError as exc:
        line = loader.get_mark().line + 1 if loader is not None else None
        raise InputError(path, "invalid YAML: nested too deeply", line=line) from exc
    finally:
        if loader is not None:
            loader.dispose()


def _problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        return f"character U+{exc.character:04X} is not allowed in YAML"
    return str(getattr(exc, "problem", None) or exc).split("\n")[0]


def _line(exc: yaml.YAMLError, text: str) -> int | None:
    if isinstance(exc, yaml.reader.ReaderError):
        return text[: exc.position].count("\n") + 1
    mark = getattr(exc, "problem_mark", None)
    return mark.line + 1 if mark is not None else None
