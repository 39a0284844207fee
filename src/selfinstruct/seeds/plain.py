"""Plain seed format: one instruction per line (blank lines and lines starting with # skipped)."""

from __future__ import annotations

from pathlib import Path

from selfinstruct.seeds.checks import check_unique
from selfinstruct.seeds.task import SeedTask


def parse_plain(text: str, path: Path) -> list[SeedTask]:
    tasks: list[SeedTask] = []
    lines: list[int] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        instruction = raw.strip()
        if not instruction or instruction.startswith("#"):
            continue
        index = len(tasks)
        tasks.append(SeedTask(f"seed_task_{index}", f"task_{index}", instruction))
        lines.append(number)
    check_unique(tasks, lines, path)
    return tasks
