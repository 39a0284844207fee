"""One run to merge: opened read-only, read in one snapshot of its store, its bootstrap
candidates grouped by batch."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct.engine.context import RunContext
from selfinstruct.errors import RunError
from selfinstruct.run.open import open_view
from selfinstruct.seeds import seed_hash
from selfinstruct.stages.bootstrap.provenance import prompt_sources
from selfinstruct.stages.bootstrap.settings import BootstrapSettings
from selfinstruct.store.run_store import InstructionRow, PromptSources


@dataclass(frozen=True)
class Candidate:
    """A bootstrap candidate of a run, with the instruction it became there (None: the run
    dropped it, for `decision`)."""

    request_idx: int
    piece_idx: int
    text: str
    decision: str
    row: InstructionRow | None


@dataclass
class SourceRun:
    """A run given to merge. `name` (how records name it) is set once every run is known."""

    path: Path
    ctx: RunContext
    run_id: str
    created_at: str
    batches: dict[int, list[Candidate]]  # by bootstrap batch, in (request, piece) order
    requests: dict[int, tuple[int, str, str]]  # completed requests: (batch, key, outcome)
    request_keys: dict[int, str]  # every request with a stored answer: its cache key
    sources: dict[int, PromptSources]  # what each bootstrap prompt showed
    name: str = field(default="")

    @property
    def settings(self) -> BootstrapSettings:
        settings: BootstrapSettings = self.ctx.config.section("bootstrap")
        return settings

    @property
    def batch_size(self) -> int:
        return self.settings.request_batch_size

    @property
    def random_seed(self) -> int:
        return self.ctx.config.random_seed

    @property
    def seed_hash(self) -> str:
        return seed_hash(self.ctx.seeds)

    @property
    def fingerprints(self) -> dict[str, dict]:
        found: dict[str, dict] = self.ctx.store.get_meta("fingerprints") or {}
        return found

    def rows(self) -> Iterator[InstructionRow]:
        """The run's instructions, in id order."""
        for batch in sorted(self.batches):
            for candidate in self.batches[batch]:
                if candidate.row is not None:
                    yield candidate.row


@contextmanager
def opened_runs(paths: Sequence[Path]) -> Iterator[list[SourceRun]]:
    """The runs, each read in one snapshot of its store (a writer may go on meanwhile: the
    merge sees each run as it stood when it was opened)."""
    with ExitStack() as stack:
        runs = []
        for path in paths:
            ctx = open_view(path, quiet=True)
            stack.callback(ctx.store.close)
            stack.enter_context(ctx.store.snapshot())
            runs.append(read_run(path, ctx))
        yield runs


def read_run(path: Path, ctx: RunContext) -> SourceRun:
    store = ctx.store
    created_at = store.get_meta("created_at") or ""
    identity = {"created_at": created_at, "fingerprints": store.get_meta("fingerprints")}
    run_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    size = ctx.config.section("bootstrap").request_batch_size
    requests = store.pool.request_rows()
    batches: dict[int, list[Candidate]] = {index // size: [] for index in requests}
    for candidate in candidates(path, store.pool.candidates(), store.pool.instructions()):
        batches.setdefault(candidate.request_idx // size, []).append(candidate)
    sources = prompt_sources(store, ctx.config, ctx.seeds)
    keys = store.pool.request_keys()
    return SourceRun(path, ctx, run_id, created_at, batches, requests, keys, sources)


def candidates(
    path: Path, rows: list[tuple[int, int, str, str]], instructions: list[InstructionRow]
) -> Iterator[Candidate]:
    """Each candidate with the instruction it became: a request's kept candidates (in piece
    order) are its instructions (in id order)."""
    by_request: dict[int, list[InstructionRow]] = {}
    for row in reversed(instructions):
        by_request.setdefault(row.request_idx, []).append(row)
    for request_idx, piece_idx, text, decision in rows:
        kept = None
        if decision == "kept":
            waiting = by_request.get(request_idx)
            kept = waiting.pop() if waiting else None
            if kept is None or kept.instruction != text:
                raise RunError(
                    f"{path}: its bootstrap records disagree (candidate {piece_idx} of request "
                    f"{request_idx} is kept but is not the instruction stored for it)"
                )
        yield Candidate(request_idx, piece_idx, text, decision, kept)
    if any(by_request.values()):
        raise RunError(f"{path}: its bootstrap records disagree (instructions without candidate)")
