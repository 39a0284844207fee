"""Bootstrap's prompts: which pool items one prompt shows (a pure function of the pool, the
settings, the run's seed and the request's index), and the numbered list they become."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from selfinstruct.prompts import Prompt, TemplateSet, TemplateSpec
from selfinstruct.seeds.task import SeedTask
from selfinstruct.stages.bootstrap.settings import STAGE, BootstrapSettings
from selfinstruct.store.rows import InstructionRow, PromptSources

_LIST = frozenset({"tasks"})
_NUMBERS = frozenset({"next_number", "last_number"})
TEMPLATE = TemplateSpec("bootstrap", _LIST, _NUMBERS)
CLASSIFICATION_TEMPLATE = TemplateSpec("bootstrap_classification", _LIST, _NUMBERS)


def prompt_line(text: str) -> str:
    """An instruction as shown in a prompt: whitespace collapsed, no trailing colon."""
    return re.sub(r"\s+", " ", text).strip().rstrip(":")


PoolItem = SeedTask | InstructionRow


def prompt_seeds(seeds: Sequence[SeedTask], settings: BootstrapSettings) -> list[SeedTask]:
    """The seed tasks bootstrap prompts with (classification ones only, when asked)."""
    if settings.classification_only:
        return [t for t in seeds if t.is_classification]
    return list(seeds)


def compose(
    seeds: Sequence[SeedTask],
    machine: Sequence[InstructionRow],
    settings: BootstrapSettings,
    random_seed: int,
    request_idx: int,
) -> list[PoolItem]:
    """The pool items one prompt shows, in prompt order: machine instructions (those from
    batches before this request's) and seeds drawn by the request's own generator, shuffled.
    Deterministic: the same arguments always give the same items."""
    rng = random.Random(f"{random_seed}:{STAGE}:{request_idx}")
    n_machine = min(settings.num_machine_instructions, len(machine))
    n_seed = min(settings.num_prompt_instructions - n_machine, len(seeds))
    chosen: list[PoolItem] = [*rng.sample(machine, n_machine), *rng.sample(seeds, n_seed)]
    rng.shuffle(chosen)
    return chosen


def sources_of(chosen: Sequence[PoolItem]) -> PromptSources:
    """The ids of the items a prompt shows, seeds and machine instructions apart."""
    return PromptSources(
        tuple(item.id for item in chosen if isinstance(item, SeedTask)),
        tuple(item.id for item in chosen if isinstance(item, InstructionRow)),
    )


def render(
    templates: TemplateSet, style: str, settings: BootstrapSettings, texts: Sequence[str]
) -> Prompt:
    """The prompt showing these instructions as a numbered list."""
    spec = CLASSIFICATION_TEMPLATE if settings.classification_only else TEMPLATE
    lines = [prompt_line(text) for text in texts]
    numbered = "\n".join(f"{i}. {line}" for i, line in enumerate(lines, start=1))
    nxt = len(lines) + 1
    if style == "completion":
        numbered += f"\n{nxt}."
    return templates.render(
        style, spec, tasks=numbered, next_number=nxt, last_number=nxt + len(lines) - 1
    )
