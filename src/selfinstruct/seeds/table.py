"""CSV seed format: a header row naming instruction, input, output (and optionally id, name,
is_classification) columns."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from selfinstruct.errors import InputError
from selfinstruct.seeds.rows import tasks_from_rows
from selfinstruct.seeds.task import SeedTask


def parse_csv(text: str, path: Path) -> list[SeedTask]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration as exc:
        raise InputError(path, "file is empty") from exc
    except csv.Error as exc:
        raise InputError(path, f"malformed CSV: {exc}", line=1) from exc
    for index, name in enumerate(header):
        if not name:
            raise InputError(path, f"column {index + 1} of the header row has no name", line=1)
        if header.index(name) != index:
            raise InputError(path, "column name repeated in the header row", line=1, field=name)
    if "instruction" not in header:
        raise InputError(
            path, "the header row has no 'instruction' column", line=1, field="instruction"
        )
    rows: list[tuple[int, dict]] = []
    try:
        start = reader.line_num + 1
        for record in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != len(header):
                raise InputError(
                    path, f"expected {len(header)} columns, found {len(record)}", line=line
                )
            rows.append((line, dict(zip(header, record, strict=True))))
    except csv.Error as exc:
        raise InputError(path, f"malformed CSV: {exc}", line=start) from exc
    return tasks_from_rows(rows, path)
