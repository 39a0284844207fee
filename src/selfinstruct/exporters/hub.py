"""Formats for the Hugging Face Hub and dataframes: Parquet (one file with a typed schema,
read by `datasets.load_dataset("parquet", ...)` and pandas) and a `datasets` directory
(`Dataset.save_to_disk`, read back with `datasets.load_from_disk`). They need the `hub` extra
(the `datasets` package, which brings pyarrow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfinstruct.errors import InputError, RunError
from selfinstruct.exporters.records import Example, ExportFormat, has_provenance, provenance_fields
from selfinstruct.io.atomic import replaced_atomically

HINT = "pip install 'selfinstruct[hub]' (the datasets package, with pyarrow)"
COLUMNS = ("instruction", "input", "output")
PROVENANCE_COLUMNS = ("instruction_id", "seed_ids", "machine_ids")  # with provenance only
SAVED_DATASET = ("dataset_info.json", "state.json")  # what save_to_disk leaves in a directory


def _columns(examples: Sequence[Example]) -> dict[str, list[Any]]:
    """The text columns, and the provenance columns when every example carries provenance."""
    columns: dict[str, list[Any]] = {
        name: [getattr(example, name) for example in examples] for name in COLUMNS
    }
    if has_provenance(examples):
        rows = [provenance_fields(example) for example in examples]
        columns.update({name: [row[name] for row in rows] for name in PROVENANCE_COLUMNS})
    return columns


def _schema(examples: Sequence[Example]) -> Any:
    """The columns' Arrow types (pyarrow is there: the callers checked)."""
    import pyarrow as pa

    types = [(name, pa.string()) for name in COLUMNS]
    if has_provenance(examples):
        types += [
            ("instruction_id", pa.int64()),
            ("seed_ids", pa.list_(pa.string())),
            ("machine_ids", pa.list_(pa.int64())),
        ]
    return pa.schema(types)


def write_parquet(path: Path, examples: Sequence[Example]) -> None:
    """One Parquet file, three string columns (and the provenance ones); written whole or
    not at all."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise RunError(f"--format parquet needs pyarrow: {HINT}") from exc
    table = pa.table(_columns(examples), schema=_schema(examples))
    with replaced_atomically(path) as tmp:
        pq.write_table(table, str(tmp))


def write_hf(path: Path, examples: Sequence[Example]) -> None:
    """A `datasets` directory; an existing one is replaced only once the new one is whole, and
    a directory that is not a saved dataset is never touched."""
    datasets = _datasets()
    if path.exists() and not _is_saved_dataset(path):
        raise InputError(path, "exists and is not a saved dataset; choose a new directory")
    features = datasets.Features.from_arrow_schema(_schema(examples))
    dataset = datasets.Dataset.from_dict(_columns(examples), features=features)
    with replaced_atomically(path, directory=True) as tmp:
        dataset.save_to_disk(str(tmp))


def _datasets() -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise RunError(f"--format hf needs the datasets package: {HINT}") from exc
    return datasets


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in SAVED_DATASET)


FORMATS = (
    ExportFormat(
        "parquet",
        lambda path, examples, encoded: write_parquet(path, examples),
        "one file (needs pip install 'selfinstruct[hub]')",
    ),
    ExportFormat(
        "hf",
        lambda path, examples, encoded: write_hf(path, examples),
        "a directory from datasets' save_to_disk (needs pip install 'selfinstruct[hub]')",
    ),
)
