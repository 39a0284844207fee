"""The records a run store hands out: instructions, instance records, prompt sources."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceRecord:
    """One parsed instance; `id` ("<instruction id>.<position>") is stable within the run."""

    instruction_id: int
    position: int
    input: str
    output: str

    @property
    def id(self) -> str:
        return f"{self.instruction_id}.{self.position}"


@dataclass(frozen=True)
class InstructionRow:
    id: int
    instruction: str
    most_similar: dict[str, float]
    avg_similarity_score: float
    request_idx: int
    batch_idx: int
    response_key: str


@dataclass(frozen=True)
class PromptSources:
    """Which seed tasks (by seed id) and machine instructions (by instruction id) one
    bootstrap prompt showed, each in the order they appear in the prompt."""

    seed_ids: tuple[str, ...]
    machine_ids: tuple[int, ...]
