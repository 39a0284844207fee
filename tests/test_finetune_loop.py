"""The whole loop, tiny, on CPU: generate data, fine-tune the embedded model on it with LoRA
(a few steps), evaluate base vs fine-tuned on a few tasks. Checks that the artifacts are real
(the adapter loads on its base, the merged model loads in a fresh process, scores are
computed), not that quality improved."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli, read_jsonl

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("loop")
    cli("run", "--out", str(root / "run"), "--backend", "fake", "--num-instructions", "20", "-q")
    result = cli(
        "finetune",
        "--data",
        str(root / "run"),
        "--out",
        str(root / "tuned"),
        "--max-steps",
        "3",
        "--batch-size",
        "2",
        "--max-length",
        "96",
        timeout=1200,
    )
    assert "step 3/3 loss" in result.stderr  # progress and loss while training
    return root / "tuned"


def test_finetune_writes_adapter_merged_model_card_and_log(tuned: Path) -> None:
    assert (tuned / "adapter" / "adapter_config.json").is_file()
    assert (tuned / "adapter" / "adapter_model.safetensors").is_file()
    assert (tuned / "merged" / "config.json").is_file()
    assert list((tuned / "merged").glob("*.safetensors"))
    card = (tuned / "README.md").read_text()
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in card and "completion only" in card
    assert '"lora_rank": 8' in card and '"max_steps": 3' in card
    log = read_jsonl(tuned / "training_log.jsonl")
    assert [e["step"] for e in log] == [1, 2, 3]
    assert all(e["loss"] > 0 for e in log)
    adapter_config = json.loads((tuned / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["r"] == 8 and "q_proj" in adapter_config["target_modules"]


def test_adapter_and_merged_model_load_independently(tuned: Path) -> None:
    script = f"""
import json, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
from selfinstruct.llm.backends.transformers import load_model
merged = AutoModelForCausalLM.from_pretrained({str(tuned / "merged")!r}, dtype=torch.float32)
tokenizer = AutoTokenizer.from_pretrained({str(tuned / "merged")!r})
base, _ = load_model(json.load(open({str(tuned / "adapter" / "selfinstruct_base.json")!r}))["base"])
adapted = PeftModel.from_pretrained(base, {str(tuned / "adapter")!r}).merge_and_unload()
ids = tokenizer("Name a color.\\n\\nOutput:", return_tensors="pt")["input_ids"]
with torch.no_grad():
    a = merged(ids).logits
    b = adapted(ids).logits
print(float((a - b).abs().max()))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout.strip().splitlines()[-1]) < 1e-3  # same weights either way


def test_evaluate_base_against_fine_tuned(tuned: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = cli(
        "evaluate",
        "--candidate",
        "base=embedded",
        "--candidate",
        f"tuned=transformers:{tuned / 'merged'}",
        "--judge",
        "fake",
        "--max-tasks",
        "3",
        "--max-tokens",
        "24",
        "--out",
        str(out),
        "-q",
        timeout=1200,
    )
    assert "base vs tuned" in result.stdout
    rows = read_jsonl(out / "results.jsonl")
    assert len(rows) == 6
    assert all(r["output"] is not None and 0.0 <= r["rouge_l"] <= 1.0 for r in rows)
    assert all(r["rating"] in ("A", "B", "C", "D") for r in rows)
    assert len(read_jsonl(out / "pairwise.jsonl")) == 3
