"""selfinstruct: turn a few seed tasks into an instruction-tuning dataset (Self-Instruct).

The Python API (the command line is a thin layer over it):

    import selfinstruct

    run = selfinstruct.Run.create("runs/x", backend="fake", num_instructions=20)
    run.generate()
    run.export("alpaca", "x.json")

See `selfinstruct.api` for the run object, and `selfinstruct.rouge_l` / `RougePool` for the
similarity filter on its own. Names are loaded on first use, so that `import selfinstruct`
(and every command) starts quickly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from selfinstruct.version import __version__

if TYPE_CHECKING:
    from selfinstruct.api import Instance, Instruction, Run, prepare_paper_files
    from selfinstruct.errors import (
        BackendError,
        BudgetExhausted,
        EmptyDatasetError,
        InputError,
        RunError,
        SelfInstructError,
    )
    from selfinstruct.similarity.rouge import RougePool, Similarity, rouge_l
    from selfinstruct.stages.registry import STAGES
    from selfinstruct.store.run_store import PromptSources

_HOMES = {
    "Instance": "selfinstruct.api",
    "Instruction": "selfinstruct.api",
    "Run": "selfinstruct.api",
    "prepare_paper_files": "selfinstruct.api",
    "BackendError": "selfinstruct.errors",
    "BudgetExhausted": "selfinstruct.errors",
    "EmptyDatasetError": "selfinstruct.errors",
    "InputError": "selfinstruct.errors",
    "RunError": "selfinstruct.errors",
    "SelfInstructError": "selfinstruct.errors",
    "RougePool": "selfinstruct.similarity.rouge",
    "Similarity": "selfinstruct.similarity.rouge",
    "rouge_l": "selfinstruct.similarity.rouge",
    "STAGES": "selfinstruct.stages.registry",
    "PromptSources": "selfinstruct.store.run_store",
}

__all__ = [
    "STAGES",
    "BackendError",
    "BudgetExhausted",
    "EmptyDatasetError",
    "InputError",
    "Instance",
    "Instruction",
    "PromptSources",
    "RougePool",
    "Run",
    "RunError",
    "SelfInstructError",
    "Similarity",
    "__version__",
    "prepare_paper_files",
    "rouge_l",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'selfinstruct' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
