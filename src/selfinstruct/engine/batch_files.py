"""Stage requests as batch files: OpenAI Batch API JSONL out (also what `vllm run-batch`
reads), and the matching results file in. Results land in the run's response cache keyed by
`custom_id` (the request's cache key), so the stage then runs without calling the model."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from selfinstruct.engine.context import RunContext
from selfinstruct.engine.plan import StagePlan
from selfinstruct.errors import InputError
from selfinstruct.io.atomic import write_jsonl
from selfinstruct.io.jsonl import json_objects
from selfinstruct.io.text import read_text
from selfinstruct.llm.openai_format import MalformedResponse, batch_line, parse_body


def write_batch(ctx: RunContext, plan: StagePlan[Any], path: Path) -> int:
    """Write every pending request of the stage; returns how many (cached ones skipped)."""
    stage = plan.stats.stage
    backend_id, model = ctx.backend_id(stage), ctx.model_name(stage)
    lines = []
    for request in plan.pending_requests():
        key = request.key(backend_id)
        if ctx.store.responses.get(key) is None:
            lines.append(batch_line(key, request, model))
    write_jsonl(path, lines)
    return len(lines)


def read_batch(ctx: RunContext, plan: StagePlan[Any], path: Path) -> Counter[str]:
    """Store the successful results of a batch output file; count what happened to each line."""
    backend_id = ctx.backend_id(plan.stats.stage)
    pending = {request.key(backend_id): request for request in plan.pending_requests()}
    counts: Counter[str] = Counter()
    with ctx.store.transaction():
        for line, record in json_objects(read_text(path), path):
            key = record.get("custom_id")
            if not isinstance(key, str):
                raise InputError(path, "missing custom_id", line=line, field="custom_id")
            request = pending.get(key)
            if request is None:
                counts["not_pending"] += 1
                continue
            response = record.get("response") or {}
            if record.get("error") or response.get("status_code") != 200:
                counts["error"] += 1
                continue
            try:
                completion = parse_body(response.get("body"), request.is_chat)
            except MalformedResponse:
                counts["malformed"] += 1
                continue
            ctx.store.responses.put(key, plan.stats.stage, request, completion)
            counts["stored"] += 1
    return counts


def describe(counts: Counter[str]) -> str:
    return json.dumps(dict(sorted(counts.items())))
