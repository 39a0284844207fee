"""Stage 1: grow the task pool with new instructions written by the model.

settings.py holds its settings, compose.py its prompts, loop.py its loop.

Requests go out in batches of `request_batch_size`; every prompt of a batch is composed from
the pool as it stood before the batch (its own random generator, seeded by the run seed and
the request index). Candidates are then judged strictly in order, each against the seeds and
everything accepted before it, and each decision is committed as it is made. A resumed run
recomposes the same prompts, takes the answers from the run's cache and skips candidates
already decided, so it ends exactly where an uninterrupted run would.

Prompts are composed by a pure function (`compose`) from pool items that carry their ids;
each prompt's sources (seed and machine instruction ids) are recorded as it is composed, and
recomputed with the same function for runs made before they were (provenance.py).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from selfinstruct.config import Flag
from selfinstruct.console.stats import StageStats
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.stage import Estimate, Stage
from selfinstruct.llm.base import Request
from selfinstruct.llm.fake_answers import FakeAnswer, FakeText, prompt_text
from selfinstruct.stages.bootstrap.compose import CLASSIFICATION_TEMPLATE, TEMPLATE
from selfinstruct.stages.bootstrap.loop import Bootstrap, BootstrapPart
from selfinstruct.stages.bootstrap.provenance import backfill_prompt_sources
from selfinstruct.stages.bootstrap.settings import (
    AUTO_SCHEDULE,
    PAPER_SCHEDULE,
    STAGE,
    TOKENIZERS,
    BootstrapSettings,
    request_stops,
)
from selfinstruct.store import paper_files
from selfinstruct.store.run_store import RunStore

ASSUMED_KEPT_PER_REQUEST = 3.0


def run(ctx: RunContext, stats: StageStats) -> None:
    Bootstrap(ctx, stats).run(ctx.config.num_instructions)


def estimate(store: RunStore | None, target: int, fingerprint: dict[str, Any]) -> Estimate:
    """Requests still needed at the yield seen so far (kept instructions per request)."""
    have = store.pool.instruction_count() if store else 0
    done = store.pool.completed_requests() if store else 0
    if store and done and have:
        rate, basis = have / done, f"{have / done:.1f} kept per request so far"
    else:
        rate = ASSUMED_KEPT_PER_REQUEST
        basis = f"assumes {ASSUMED_KEPT_PER_REQUEST:.0f} kept per request"
    return Estimate(math.ceil(max(0, target - have) / rate), basis)


def write_files(ctx: RunContext) -> list[Path]:
    return [paper_files.write_instructions(ctx.store)]


def fake_answer(text: FakeText, request: Request) -> str:
    """A numbered list continuing the prompt's, now and then with items the filters drop
    (too short, blocked words, repeats of the prompt) and an item that never ends."""
    rng = text.rng
    shown = re.findall(r"^\s*\d+\.\s*(.+)$", prompt_text(request), flags=re.M)
    items = [
        text.instruction() if rng.random() < 0.85 else text.flawed_instruction(shown)
        for _ in range(rng.randint(5, 9))
    ]
    if rng.random() < 0.04:
        items.append(text.rambling(request.max_tokens + 5))
    numbered = [f"{9 + i}. {item}" for i, item in enumerate(items)]
    if request.is_chat:
        preamble = rng.choice(("Here are some new tasks:\n\n", "Sure!\n", ""))
        return preamble + "\n".join(numbered)
    answer = " " + "\n".join(numbered)[len("9. ") :]
    return answer + ("\n\n" if rng.random() < 0.5 else "\n")


def counts(ctx: RunContext) -> dict[str, int]:
    return {"instructions": ctx.store.pool.instruction_count()}


def backfill(ctx: RunContext) -> int:
    """The prompt sources of requests composed before they were recorded."""
    return backfill_prompt_sources(ctx.store, ctx.config, ctx.seeds)


FLAGS = (
    Flag(
        ("--classification-only/--no-classification-only",),
        "Bootstrap from classification seeds only, asking for classification tasks.",
        f"{STAGE}.classification_only",
        kind="switch",
    ),
    Flag(
        ("--tokenizer",),
        "ROUGE-L tokenizer: rouge (the reference, ASCII) or unicode.",
        f"{STAGE}.tokenizer",
        kind="choice",
        choices=TOKENIZERS,
    ),
    Flag(
        ("--batches-in-flight",),
        "Bootstrap batches composed ahead of judging: batch b's prompts show the pool as "
        "judged after batch b - K. 'paper' (K = 1): the paper's schedule. Default 'auto': "
        "for a server, batches for twice its --concurrency in prompts (8 to 32; 26 for 64), "
        "1 for a local engine.",
        f"{STAGE}.batches_in_flight",
        kind="count",
        words=(AUTO_SCHEDULE, PAPER_SCHEDULE),
        metavar="K|auto|paper",
    ),
)


STAGE_DEF = Stage(
    name=STAGE,
    help="Stage 1: generate new instructions from the task pool (creates the run).",
    run=run,
    unit="instructions",
    settings=BootstrapSettings,
    flags=FLAGS,
    templates=(TEMPLATE, CLASSIFICATION_TEMPLATE),
    stops=request_stops,
    runtime_only=frozenset({"max_requests", "similarity_workers"}),
    depends_on_seeds=True,
    record_count=lambda store: store.count("candidates"),
    counts=counts,
    write_files=write_files,
    estimate=estimate,
    sample_template=TEMPLATE,
    assumed_output_tokens=200.0,
    fake_answers=(
        FakeAnswer("bootstrap", fake_answer),
        FakeAnswer("bootstrap_classification", fake_answer),
    ),
    backfill=backfill,
    creates_run=True,
    stream=BootstrapPart,
)
