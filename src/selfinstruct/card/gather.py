"""What the dataset card of a run says, gathered from its store and settings (`run_card`),
or from the paper's files prepare read (`imported_card`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfinstruct.analysis.table1 import Table1, table1
from selfinstruct.card.document import CardData, Dropped, Fact, code, write_card
from selfinstruct.config import Config
from selfinstruct.console.stats import StageStats
from selfinstruct.dataset.build import PreparedData
from selfinstruct.engine.context import RunContext
from selfinstruct.exporters import written
from selfinstruct.parsing.labels import UNREADABLE
from selfinstruct.seeds import seed_hash
from selfinstruct.version import __version__
from selfinstruct.views.funnel import run_funnel

# The settings the card shows, by section ("": core keys).
CARD_SETTINGS = {
    "": ("num_instructions", "random_seed", "prompt_style"),
    "bootstrap": (
        "num_prompt_instructions",
        "num_machine_instructions",
        "classification_only",
        "temperature",
        "top_p",
        "presence_penalty",
        "max_tokens",
        "rouge_threshold",
        "tokenizer",
    ),
    "classify": ("temperature", "top_p", "max_tokens"),
    "instances": ("max_instances", "temperature", "top_p", "presence_penalty", "max_tokens"),
    "prepare": (
        "max_instances_per_task",
        "include_seed_tasks",
        "classification_tasks_only",
        "field_removal_probability",
        "min_rating",
        "require_yes",
        "decontaminate",
        "decontaminate_rouge",
        "decontaminate_ngram",
    ),
}
PACKAGED_EVAL = "the evaluation tasks packaged with selfinstruct"
STYLES = {
    "completion": "the paper's list continuation, for base models",
    "chat": "chat messages, for instruct models",
}


def write_run_card(
    ctx: RunContext,
    data: PreparedData,
    stats: StageStats,
    directory: Path,
    quality: str,
    reviewed: int = 0,
) -> Path:
    """exports/README.md for a run's dataset (prepare has just built `data`); `quality`: what
    it says of the quality checks (`quality_text`); `reviewed`: the instances people rated."""
    card = dataclasses.replace(run_card(ctx, data, stats, quality), reviewed=reviewed)
    return write_card(directory, card)


def run_card(ctx: RunContext, data: PreparedData, stats: StageStats, quality: str) -> CardData:
    store, config = ctx.store, ctx.config
    rows = store.pool.instructions()
    labels = store.labels.all()
    model = store.get_meta("model_file") or {}
    funnel = run_funnel(store, config.num_instructions, config.prompt_style)
    made_with: list[Fact] = [
        ("backend", code(ctx.choice.name)),
        ("model", code(ctx.model_label())),
    ]
    if model.get("sha256"):
        made_with.append(("model file sha256", code(model["sha256"])))
    made_with += [
        ("prompt style", _style(config.prompt_style)),
        ("prompt templates", "custom" if config.templates else "the packaged ones"),
        ("seed tasks", _seeds(config, len(ctx.seeds), seed_hash(ctx.seeds))),
        ("instructions", f"{funnel.instructions:,} accepted of {config.num_instructions:,} asked"),
    ]
    dropped = [
        Dropped("bootstrap", "candidate instructions", funnel.candidates_dropped),
        Dropped("bootstrap", "responses (whole)", _not_ok(funnel.responses)),
        Dropped("classify", "unreadable answers (counted as no)", _unreadable(funnel.labels)),
    ]
    return _card(
        config,
        data,
        made_with,
        table1(
            [row.instruction for row in rows],
            [labels[row.id][1] if row.id in labels else None for row in rows],
            [(e.input, e.output) for e in data.generated],
        ),
        [*dropped, *_prepare_dropped(stats)],
        name=store.run_dir.resolve().name,
        packaged_model=bool(model.get("packaged")),
        software=_software(store.get_meta("versions") or {}),
        quality=quality,
    )


def imported_card(
    config: Config,
    data: PreparedData,
    stats: StageStats,
    tasks: Sequence[tuple[str, bool]],
    sources: Sequence[Path],
    out: Path,
    quality: str,
) -> CardData:
    """The card of a dataset prepared from the paper's files of another run (`tasks`: their
    instructions and labels): the model and generation settings are not in those files."""
    made_with: list[Fact] = [
        ("imported from", ", ".join(code(path.name) for path in sources)),
        ("model, seeds and generation settings", "not recorded in those files"),
    ]
    return _card(
        config,
        data,
        made_with,
        table1(
            [instruction for instruction, _ in tasks],
            [label for _, label in tasks],
            [(e.input, e.output) for e in data.generated],
        ),
        _prepare_dropped(stats),
        name=out.resolve().name,
        settings={"prepare": _section(config, "prepare")},
        software=f"Prepared with selfinstruct {__version__}.",
        quality=quality,
    )


def _card(
    config: Config,
    data: PreparedData,
    made_with: list[Fact],
    stats: Table1,
    dropped: list[Dropped],
    *,
    name: str,
    settings: dict[str, dict[str, Any]] | None = None,
    packaged_model: bool = False,
    software: str = "",
    quality: str = "",
) -> CardData:
    prepare = config.section("prepare")
    return CardData(
        pretty_name=prepare.dataset_name or name or "selfinstruct dataset",
        license=prepare.license,
        language=prepare.language,
        records=len(data.training),
        data_files=[found.file_name for found in written()],
        made_with=made_with,
        table1=stats,
        settings=settings if settings is not None else _settings(config),
        dropped=dropped,
        packaged_model=packaged_model,
        software=software,
        quality=quality,
    )


def quality_text(config: Config, checks: list[str]) -> str:
    """What the card says about decontamination (prepare's own), then about the checks of
    the run's stages (`checks`: their lines, in run order)."""
    prepare = config.section("prepare")
    lines = []
    if prepare.decontaminate:
        files = ", ".join(code(Path(f).name) for f in prepare.decontaminate_files)
        lines.append(
            f"- Decontaminated against {files or PACKAGED_EVAL}: instructions with ROUGE-L "
            f"above {prepare.decontaminate_rouge} to an evaluation instruction, and instances "
            f"sharing {prepare.decontaminate_ngram} consecutive words with an evaluation task, "
            "were dropped."
        )
    return "\n".join([*lines, *checks])


def _style(style: str) -> str:
    return f"{code(style)} ({STYLES[style]})" if style in STYLES else code(style)


def _seeds(config: Config, count: int, digest: str) -> str:
    source = f"from {code(Path(config.seeds).name)}" if config.seeds else "the packaged set"
    return f"{count:,} tasks, {source} (sha256 of the parsed tasks: {code(digest)})"


def _not_ok(outcomes: dict[str, int]) -> dict[str, int]:
    return {outcome: n for outcome, n in outcomes.items() if outcome != "ok"}


def _unreadable(labels: dict[str, int]) -> dict[str, int]:
    return {UNREADABLE: labels.get(UNREADABLE, 0)}


def _prepare_dropped(stats: StageStats) -> list[Dropped]:
    lost = stats.as_dict()["lost"]
    return [
        Dropped("prepare", "tasks", lost.get("tasks", {})),
        Dropped("prepare", "instances", dict(sorted(stats.dropped.items()))),
        Dropped("prepare", "fine-tuning examples", lost.get("examples", {})),
    ]


def _settings(config: Config) -> dict[str, dict[str, Any]]:
    core = {key: getattr(config, key) for key in CARD_SETTINGS[""]}
    return {"": core, **{name: _section(config, name) for name in CARD_SETTINGS if name}}


def _section(config: Config, name: str) -> dict[str, Any]:
    section = config.section(name)
    keys = CARD_SETTINGS[name]
    return {key: getattr(section, key) for key in keys if hasattr(section, key)}


def _software(versions: dict[str, str]) -> str:
    """The versions the run was generated with (and prepare's, when it differs)."""
    version = versions.get("selfinstruct", __version__)
    others = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if k != "selfinstruct")
    text = f"Generated with selfinstruct {version}" + (f" ({others})" if others else "")
    if version != __version__:
        text += f"; prepared with selfinstruct {__version__}"
    return text + "."
