"""selfinstruct: turn a few seed tasks into an instruction-tuning dataset (Self-Instruct).

The Python API (the command line is a thin layer over it):

    import selfinstruct

    run = selfinstruct.Run.create("runs/x", backend="fake", num_instructions=20)
    run.generate()
    run.export("alpaca", "x.json")

See `selfinstruct.api` for the run object, and `selfinstruct.rouge_l` / `RougePool` for the
similarity filter on its own.
"""

from selfinstruct.api import Instance, Instruction, Run, prepare_paper_files
from selfinstruct.errors import (
    BackendError,
    EmptyDatasetError,
    InputError,
    RunError,
    SelfInstructError,
)
from selfinstruct.similarity.rouge import RougePool, Similarity, rouge_l
from selfinstruct.stages.registry import STAGES
from selfinstruct.version import __version__

__all__ = [
    "STAGES",
    "BackendError",
    "EmptyDatasetError",
    "InputError",
    "Instance",
    "Instruction",
    "RougePool",
    "Run",
    "RunError",
    "SelfInstructError",
    "Similarity",
    "__version__",
    "prepare_paper_files",
    "rouge_l",
]
