"""What prepare writes: the paper's fine-tuning files, every export format, and what the
quality screen dropped."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from selfinstruct.dataset.build import PreparedData
from selfinstruct.exporters import written
from selfinstruct.filters.screen import Drop
from selfinstruct.io.atomic import write_jsonl
from selfinstruct.store.run_store import RunStore

FINETUNE_DIR = "finetuning_data"
EXPORT_DIR = "exports"
QUALITY_DROPS = "quality_drops.jsonl"


def write_quality_drops(store: RunStore, drops: Sequence[Drop]) -> Path:
    """quality_drops.jsonl: every task and instance the quality screen dropped, with the
    reason and its detail (the evaluation task matched, the judge's reasons...)."""
    texts = {row.id: row.instruction for row in store.pool.instructions()}
    records = {r.id: r for rs in store.instances.parsed().values() for r in rs}
    rows = []
    for drop in drops:
        record = records.get(f"{drop.instruction_id}.{drop.position}")
        rows.append(
            {
                "instruction_id": drop.instruction_id,
                "position": drop.position,
                "instruction": texts.get(drop.instruction_id, ""),
                "input": record.input if record else None,
                "output": record.output if record else None,
                "reason": drop.reason,
                "detail": drop.detail,
            }
        )
    path = store.run_dir / QUALITY_DROPS
    write_jsonl(path, rows)
    return path


def describe_screen(drops: Sequence[Drop]) -> list[str]:
    """Summary lines: the quality screen's drops by reason (whole tasks and instances apart),
    with one example detail each."""
    lines = []
    kinds = Counter((drop.reason, drop.position is None) for drop in drops)
    for (reason, whole), count in sorted(kinds.items(), key=lambda kv: -kv[1]):
        example = next(d for d in drops if d.reason == reason and (d.position is None) == whole)
        unit = "tasks" if whole else "instances"
        lines.append(
            f"{reason}: {count} {unit}, e.g. instruction {example.instruction_id}: {example.detail}"
        )
    return lines


def write_outputs(run_dir: Path, data: PreparedData) -> list[Path]:
    """The paper's fine-tuning files and every export format; returns the paths written."""
    ft = run_dir / FINETUNE_DIR
    paths = [
        ft / "all_generated_instances.jsonl",
        ft / f"gpt3_finetuning_data_{len(data.encoded)}.jsonl",
    ]
    write_jsonl(
        paths[0],
        (
            {"instruction": e.instruction, "input": e.input, "output": e.output}
            for e in data.generated
        ),
    )
    for old in ft.glob("gpt3_finetuning_data_*.jsonl"):
        if old != paths[1]:
            old.unlink()
    write_jsonl(paths[1], ({"prompt": r.prompt, "completion": r.completion} for r in data.encoded))
    for found in written():
        path = run_dir / EXPORT_DIR / found.file_name
        found.write(path, data.training, data.encoded)
        paths.append(path)
    return paths
