"""The paper's intermediate files, derived from the run store (names and fields kept). A
merged run's records also name their source: `source_run` and `source_id`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from selfinstruct.io.atomic import write_jsonl
from selfinstruct.store.run_store import InstructionRow, RunStore

INSTRUCTIONS_FILE = "machine_generated_instructions.jsonl"
INSTANCES_FILE = "machine_generated_instances.jsonl"


def labels_file_name(engine: str, template: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", engine).strip("-") or "model"
    return f"is_clf_or_not_{slug}_{template}.jsonl"


def source_fields(sources: dict[int, tuple[str, int]], instruction_id: int) -> dict[str, Any]:
    """`source_run` and `source_id` of a merged run's instruction (nothing otherwise)."""
    if instruction_id not in sources:
        return {}
    run, source_id = sources[instruction_id]
    return {"source_run": run, "source_id": source_id}


def write_instructions(store: RunStore) -> Path:
    path = store.run_dir / INSTRUCTIONS_FILE
    sources = store.merges.sources()
    write_jsonl(
        path,
        (
            {
                "instruction": row.instruction,
                "most_similar": row.most_similar,
                "avg_similarity_score": row.avg_similarity_score,
                "metadata": store.responses.record(row.response_key),
                "request_idx": row.request_idx,
                **source_fields(sources, row.id),
            }
            for row in store.pool.instructions()
        ),
    )
    return path


def write_labels(store: RunStore, engine: str, template: str, *, old_engine: str = "") -> Path:
    """The labels file, named after the model's short name (`engine`). Runs written before
    used the whole model name (a GGUF's full path): that copy is replaced by this one."""
    path = store.run_dir / labels_file_name(engine, template)
    labels = store.labels.all()
    write_jsonl(
        path,
        (
            {"instruction": row.instruction, "is_classification": labels[row.id][0]}
            for row in store.pool.instructions()
            if row.id in labels
        ),
    )
    old = store.run_dir / labels_file_name(old_engine, template) if old_engine else path
    if old != path:
        old.unlink(missing_ok=True)
    return path


def write_instances(store: RunStore) -> Path:
    path = store.run_dir / INSTANCES_FILE
    raw = store.instances.raw()
    labels = store.labels.all()
    sources = store.merges.sources()

    def record(row: InstructionRow) -> dict[str, Any]:
        text, _, key = raw[row.id]
        return {
            "instruction": row.instruction,
            "raw_instances": text,
            "instance_metadata": store.responses.record(key),
            "instruction_metadata": {
                "is_classification": labels[row.id][0] if row.id in labels else None,
                "request_idx": row.request_idx,
                **store.responses.record(row.response_key),
            },
            "most_similar": row.most_similar,
            "avg_similarity_score": row.avg_similarity_score,
            **source_fields(sources, row.id),
        }

    write_jsonl(path, (record(row) for row in store.pool.instructions() if row.id in raw))
    return path
