"""Everything the report shows, read once from a run store (read-only is enough; one open to
write keeps the verb-noun pairs parsed, see parses.py) and turned into the numbers of
report.json (`summary`) and the browser's records (`browser`)."""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct.analysis.histogram import (
    INPUT_EDGES,
    INSTRUCTION_EDGES,
    OUTPUT_EDGES,
    SCORE_EDGES,
    histogram,
)
from selfinstruct.analysis.overlap import nearest_seeds
from selfinstruct.analysis.table1 import table1, words
from selfinstruct.analysis.variety import variety
from selfinstruct.analysis.verbs import VerbNouns
from selfinstruct.config import PricingSettings
from selfinstruct.dataset.build import PreparedData, build, left_out
from selfinstruct.dataset.settings import STAGE as PREPARE
from selfinstruct.engine.context import RunContext
from selfinstruct.errors import InputError
from selfinstruct.filters.reasons import NOT_CLASSIFICATION, TRUNCATED, UNPARSEABLE
from selfinstruct.filters.screen import Drop
from selfinstruct.parsing.labels import UNREADABLE, read_label
from selfinstruct.report.parses import verb_pairs
from selfinstruct.report.steps import Step, excerpt, step
from selfinstruct.seeds import seed_hash
from selfinstruct.similarity.tokenize import Tokenizer, get_tokenizer
from selfinstruct.stages import prepare, registry
from selfinstruct.stages.bootstrap.provenance import prompt_sources
from selfinstruct.stages.bootstrap.settings import BootstrapSettings
from selfinstruct.store.run_store import InstructionRow, PromptSources, RunStore
from selfinstruct.store.schema import now
from selfinstruct.version import __version__
from selfinstruct.views.tasks import ParsedTask, parsed_tasks

FORMAT = "selfinstruct-report"
FORMAT_VERSION = 1
SKIPPED = "The verb-noun chart was turned off for this report (--no-verbs)."


@dataclass
class RunData:
    """A run's records as the report needs them, read once."""

    ctx: RunContext
    rows: list[InstructionRow]
    labels: dict[int, tuple[str, bool]]
    tasks: dict[int, ParsedTask]
    fates: dict[int, list[str]]  # prepare's fate of each instance: "" kept, else why not
    generated: list[tuple[str, str]]  # the kept (input, output) pairs, in dataset order
    verbs: VerbNouns
    seed_scores: list[tuple[int, float]]
    sources: dict[int, PromptSources]  # each bootstrap request's prompt sources
    candidates: list[tuple[int, int, str, str]]
    outcomes: dict[int, str]  # completed bootstrap requests' outcomes
    request_keys: dict[int, str]  # bootstrap requests with a stored answer
    answers: dict[str, tuple[str, str, str]]  # bootstrap's stored exchanges by key
    screened: list[Drop]  # what prepare's quality checks dropped
    dropped_tasks: list[tuple[ParsedTask, str]]  # tasks with no instance kept, and why

    @functools.cached_property
    def screened_by_task(self) -> dict[int, list[Drop]]:
        found: dict[int, list[Drop]] = {}
        for drop in self.screened:
            found.setdefault(drop.instruction_id, []).append(drop)
        return found

    @property
    def style(self) -> str:
        return self.ctx.config.prompt_style


def read_run(
    ctx: RunContext,
    *,
    verbs: bool = True,
    prepared: PreparedData | None = None,
    nouns: VerbNouns | None = None,
) -> RunData:
    """The run's records; `prepared`: the dataset prepare has just built from this store (so
    the report neither rebuilds it nor replays its filters), else it is built here; `nouns`:
    the verb-noun numbers when already read, else read (or parsed) as `verbs` says."""
    store = ctx.store
    rows = store.pool.instructions()
    data = prepared or _prepared(ctx)
    texts = [row.instruction for row in rows]
    tokenizer = _tokenizer(ctx)
    seeds = [seed.instruction for seed in ctx.seeds]
    return RunData(
        ctx=ctx,
        rows=rows,
        labels=store.labels.all(),
        tasks={task.instruction_id: task for task in data.tasks},
        fates=data.fates,
        generated=[(e.input, e.output) for e in data.generated],
        verbs=nouns if nouns is not None else verb_nouns(store, rows, verbs),
        seed_scores=nearest_seeds(texts, seeds, tokenizer),
        sources=prompt_sources(store, ctx.config, ctx.seeds),
        candidates=store.pool.candidates(),
        outcomes=store.pool.request_outcomes_by_index(),
        request_keys=store.pool.request_keys(),
        answers=store.responses.of_stage("bootstrap"),
        screened=data.screened,
        dropped_tasks=data.dropped_tasks,
    )


def verb_nouns(store: RunStore, rows: list[InstructionRow], verbs: bool) -> VerbNouns:
    """The verb-noun chart's numbers for `rows` (parsed where missing), or the note saying
    the chart was turned off."""
    return verb_pairs(store, rows) if verbs else VerbNouns(available=False, hint=SKIPPED)


def _prepared(ctx: RunContext) -> PreparedData:
    """Prepare's dataset, built from the store as prepare builds it (its examples without
    provenance, which the report does not show)."""
    tasks = parsed_tasks(ctx.store, ctx.config.prompt_style)
    stats = prepare.STAGE_DEF.new_stats()
    return build(tasks, ctx.seeds, ctx.config, ctx.templates, stats, None, prepare.screen_for(ctx))


def _tokenizer(ctx: RunContext) -> Tokenizer:
    """The tokenizer the run's similarity filter used (so scores here match its scores)."""
    settings: BootstrapSettings = ctx.config.section("bootstrap")
    return get_tokenizer(settings.tokenizer)


# -- report.json ------------------------------------------------------------------------------
def summary(data: RunData) -> dict[str, Any]:
    """The numbers behind every chart and table of the report."""
    texts = [row.instruction for row in data.rows]
    seeds = [seed.instruction for seed in data.ctx.seeds]
    tokenizer = _tokenizer(data.ctx)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generated_at": now(),
        "selfinstruct": __version__,
        "run": run_info(data.ctx),
        "table1": table1(
            texts,
            [data.labels[row.id][1] if row.id in data.labels else None for row in data.rows],
            data.generated,
        ).as_dict(),
        "diversity": data.verbs.as_dict(),
        "similarity": {
            "to_seed": histogram((s for _, s in data.seed_scores), SCORE_EDGES).as_dict(),
            "to_pool": histogram((_pool_max(row) for row in data.rows), SCORE_EDGES).as_dict(),
        },
        "lengths": {
            "instruction": histogram(map(words, texts), INSTRUCTION_EDGES).as_dict(),
            "input": histogram(
                (words(i) for i, _ in data.generated if i.strip()), INPUT_EDGES
            ).as_dict(),
            "output": histogram((words(o) for _, o in data.generated), OUTPUT_EDGES).as_dict(),
        },
        "variety": {
            "generated": variety(texts, tokenizer).as_dict(),
            "seeds": variety(seeds, tokenizer).as_dict(),
        },
        "funnel": [s.as_dict() for s in funnel(data)],
        **recorded(data.ctx),
        "screened": dict(Counter(drop.reason for drop in data.screened).most_common()),
    }


def recorded(ctx: RunContext) -> dict[str, Any]:
    """The numbers the run records last: each stage's runs (economics), the stages' own
    numbers; in the report's order."""
    return {"economics": economics(ctx), **registry.stage_numbers(ctx)}


def run_info(ctx: RunContext) -> dict[str, Any]:
    store, config = ctx.store, ctx.config
    return {
        "path": str(store.run_dir),
        "name": Path(store.run_dir).resolve().name,
        "model": ctx.model_description(),
        "prompt_style": config.prompt_style,
        "num_instructions": config.num_instructions,
        "seeds": {
            "path": config.seeds or "(packaged)",
            "count": len(ctx.seeds),
            "sha256": seed_hash(ctx.seeds),
        },
        "created_at": store.get_meta("created_at"),
        "versions": store.get_meta("versions") or {},
    }


def _pool_max(row: InstructionRow) -> float:
    """The instruction's highest ROUGE-L against the pool when it was accepted."""
    return max(row.most_similar.values(), default=0.0)


def funnel(data: RunData) -> list[Step]:
    return [
        _responses_step(data),
        _candidates_step(data),
        _classify_step(data),
        _instances_step(data),
        _prepare_step(data),
        _tasks_step(data),
    ]


def _responses_step(data: RunData) -> Step:
    """Bootstrap's answers: judged whole, or dropped whole by outcome (the request a run
    stopped in when it reached its target has no outcome yet; its answer was used)."""
    drops = [
        (outcome, _answer(data, data.request_keys.get(idx)))
        for idx, outcome in data.outcomes.items()
        if outcome != "ok"
    ]
    total = len(data.outcomes.keys() | data.request_keys.keys())
    return step("bootstrap", "responses", total - len(drops), drops)


def _answer(data: RunData, key: str | None) -> str:
    found = data.answers.get(key or "")
    return found[1] if found else "(no answer)"


def _candidates_step(data: RunData) -> Step:
    rows = data.candidates
    drops = [(decision, text) for _, _, text, decision in rows if decision != "kept"]
    return step("bootstrap", "candidates", len(rows) - len(drops), drops)


def _classify_step(data: RunData) -> Step:
    """Every label is kept; an answer neither yes nor no counts as not classification (the
    paper's rule), shown as a note with examples."""
    unreadable = [
        (UNREADABLE, raw)
        for raw, _ in data.labels.values()
        if read_label(raw, data.style) == UNREADABLE
    ]
    found = step("classify", "labels", len(data.labels), [])
    found.notes = step("classify", "labels", 0, unreadable)
    return found


def _instances_step(data: RunData) -> Step:
    raw = data.ctx.store.instances.raw()
    drops = []
    for instruction_id, (text, _, _) in raw.items():
        task = data.tasks.get(instruction_id)
        if task is not None and not task.instances:
            drops.append((TRUNCATED if task.truncated else UNPARSEABLE, text))
    return step("instances", "answers", len(raw) - len(drops), drops)


def instance_reasons(data: RunData, task: ParsedTask) -> list[str]:
    """Each instance's fate in prepare: "" when kept, else the reason it was dropped."""
    if _skipped(data, task):
        return [NOT_CLASSIFICATION] * len(task.instances)
    return data.fates[task.instruction_id]


def _skipped(data: RunData, task: ParsedTask) -> bool:
    """Whether prepare leaves the task out whole (only classification tasks wanted)."""
    return left_out(task, data.ctx.config.section(PREPARE))


def _prepare_step(data: RunData) -> Step:
    """Instances of the tasks prepare considers (the others are counted as tasks)."""
    drops = []
    for task in data.tasks.values():
        if _skipped(data, task):
            continue
        for record, reason in zip(task.instances, instance_reasons(data, task), strict=True):
            if reason:
                drops.append(
                    (reason, _instance_text(task.instruction, record.input, record.output))
                )
    return step("prepare", "instances", len(data.generated), drops)


def _instance_text(instruction: str, inp: str, out: str) -> str:
    return f"{excerpt(instruction, 150)}\ninput: {excerpt(inp, 120)}\noutput: {excerpt(out, 120)}"


def _tasks_step(data: RunData) -> Step:
    """Tasks with at least one instance in the dataset, and why the others have none (each
    under one reason, as prepare counts them: `dataset.build.task_reason`)."""
    drops = [(reason, task.instruction) for task, reason in data.dropped_tasks]
    return step("prepare", "tasks", len(data.tasks) - len(drops), drops)


def economics(ctx: RunContext) -> dict[str, Any]:
    """Requests, cache hits, tokens, cost (each stage at its own prices: the judge's may
    differ), time and throughput per stage and in total."""
    stages = [_rates(row, _prices(ctx, row["stage"])) for row in ctx.store.stage_runs.totals()]
    total = {key: sum(s[key] for s in stages) for key in _SUMMED}
    costs = [s["cost"] for s in stages if s["cost"] is not None]
    summed = _rates({"stage": "total", **total}, None)
    summed["cost"] = round(sum(costs), 6) if costs else None
    return {"priced": bool(costs), "stages": stages, "total": summed}


_SUMMED = ("runs", "seconds", "requests", "cached", "prompt_tokens", "completion_tokens")


def _prices(ctx: RunContext, stage: str) -> PricingSettings | None:
    """A stage's prices (None: none set, or a stage this release does not know)."""
    try:
        pricing = registry.get_stage(stage).prices(ctx.config)
    except InputError:
        return None
    return pricing if pricing.priced else None


def _rates(row: dict[str, Any], pricing: PricingSettings | None) -> dict[str, Any]:
    seconds = row["seconds"] or 0.0
    return {
        **row,
        "seconds": round(seconds, 3),
        "cost": round(pricing.cost(row["prompt_tokens"], row["completion_tokens"]), 6)
        if pricing is not None
        else None,
        "requests_per_second": round(row["requests"] / seconds, 3) if seconds else 0.0,
        "tokens_per_second": round(row["completion_tokens"] / seconds, 1) if seconds else 0.0,
    }


# -- the browser's records ------------------------------------------------------------------
def browser(data: RunData) -> dict[str, Any]:
    """Every instruction and every dropped candidate, in a compact columnar shape (the
    report's script reads it; see assets/report.js)."""
    seeds = data.ctx.seeds
    refs = {seed.instruction: -(i + 1) for i, seed in enumerate(seeds)}
    refs.update({row.instruction: row.id for row in data.rows})
    lines: dict[str, int] = {}
    requests = _requests(data, lines)
    return {
        "seeds": [[seed.id, seed.instruction] for seed in seeds],
        "instructions": [_instruction(data, row, refs, n) for n, row in enumerate(data.rows)],
        "lines": list(lines),
        "requests": requests,
        "dropped": [
            [request_idx, text, decision]
            for request_idx, _, text, decision in data.candidates
            if decision != "kept"
        ],
    }


def _instruction(data: RunData, row: InstructionRow, refs: dict[str, int], n: int) -> list[Any]:
    label = data.labels.get(row.id)
    task = data.tasks.get(row.id)
    instances: list[list[str]] = []
    if task is not None:
        reasons = instance_reasons(data, task)
        details = _screen_details(data, row.id)
        instances = [
            [r.input, r.output, why, details.get(r.position, "")]
            for r, why in zip(task.instances, reasons, strict=True)
        ]
    seed_index, seed_score = data.seed_scores[n]
    pair = data.verbs.pairs[n] if data.verbs.pairs else None
    return [
        row.id,
        row.instruction,
        None if label is None else int(label[1]),
        round(_pool_max(row), 4),
        round(seed_score, 4),
        seed_index,
        instances,
        [[refs.get(text, 0), round(score, 4)] for text, score in row.most_similar.items()],
        row.request_idx,
        label[0] if label else None,
        " ".join(pair) if pair else "",
        _sources(data.sources.get(row.request_idx)),
    ]


def _screen_details(data: RunData, instruction_id: int) -> dict[int | None, str]:
    """The quality screen's detail for each dropped instance of one task, by position (a
    whole task's drop applies to all its instances)."""
    found = {d.position: d.detail for d in data.screened_by_task.get(instruction_id, [])}
    if None in found and data.tasks.get(instruction_id):
        return {r.position: found[None] for r in data.tasks[instruction_id].instances}
    return found


def _sources(found: PromptSources | None) -> list[list[Any]] | None:
    """[seed ids, machine instruction ids] of the prompt an instruction came from."""
    return None if found is None else [list(found.seed_ids), list(found.machine_ids)]


def _requests(data: RunData, lines: dict[str, int]) -> dict[str, list[Any]]:
    """Every bootstrap request with a stored answer: its prompt (as indices into the shared
    table of prompt lines: prompts repeat the same seed lines, and the page stays small),
    answer, finish reason and outcome."""
    found: dict[str, list[Any]] = {}
    for idx, key in sorted(data.request_keys.items()):
        if key in data.answers:
            request, answer, finish = data.answers[key]
            prompt = [
                lines.setdefault(line, len(lines))
                for line in _prompt_text(json.loads(request)).split("\n")
            ]
            found[str(idx)] = [prompt, answer, finish, data.outcomes.get(idx, "partly judged")]
    return found


def _prompt_text(request: dict[str, Any]) -> str:
    if request.get("prompt") is not None:
        return str(request["prompt"])
    return "\n\n".join(f"[{role}]\n{content}" for role, content in request.get("messages") or [])
