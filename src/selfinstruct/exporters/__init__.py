"""The dataset formats: each module here declares the formats it writes (`FORMATS`, a tuple of
`ExportFormat`), found by name when first asked for. A new format is one module.

`written()`: what prepare writes into exports/, in rank order; `formats()`: every format
`export --format` can write, by name."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from selfinstruct.exporters.records import Example, ExportFormat, PromptCompletion, Writer


@cache
def formats() -> dict[str, ExportFormat]:
    """Every format the modules of this package declare, by name."""
    found: dict[str, ExportFormat] = {}
    for module in pkgutil.iter_modules(__path__):
        for declared in getattr(
            importlib.import_module(f"{__name__}.{module.name}"), "FORMATS", ()
        ):
            found[declared.name] = declared
    return dict(sorted(found.items()))


def written() -> list[ExportFormat]:
    """The formats prepare writes into exports/, the first the dataset card's default."""
    return sorted((f for f in formats().values() if f.file_name), key=lambda f: f.rank)


__all__ = ["Example", "ExportFormat", "PromptCompletion", "Writer", "formats", "written"]
