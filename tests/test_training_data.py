"""Training rows for `selfinstruct finetune` from runs and exported files, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import cli

from selfinstruct.cli import main
from selfinstruct.errors import InputError
from selfinstruct.prompts import TemplateSet
from selfinstruct.training.data import load_rows

EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "run"
    cli("run", "--out", str(out), "--backend", "fake", "--num-instructions", "15", "-q")
    for fmt, name in (
        ("alpaca", "alpaca.json"),
        ("openai-chat", "chat.jsonl"),
        ("prompt-completion", "pc.jsonl"),
    ):
        cli("export", "--run", str(out), "--format", fmt, "--out", str(out.parent / name), "-q")
    return out


def test_every_source_gives_prompt_completion_rows(run_dir: Path) -> None:
    templates = TemplateSet()
    from_run = load_rows(run_dir, templates, EOT)
    assert all(r["completion"].endswith(EOT) for r in from_run)
    assert load_rows(run_dir.parent / "pc.jsonl", templates, EOT) == from_run
    alpaca = load_rows(run_dir.parent / "alpaca.json", templates, EOT)
    assert len(alpaca) == len(json.loads((run_dir.parent / "alpaca.json").read_text()))
    assert all(isinstance(r["prompt"], str) and r["completion"].endswith(EOT) for r in alpaca)
    chat = load_rows(run_dir.parent / "chat.jsonl", templates, EOT)
    assert len(chat) == len(alpaca)
    assert all(
        r["prompt"][-1]["role"] == "user" and r["completion"][0]["role"] == "assistant"
        for r in chat
    )


@pytest.mark.parametrize(
    ("content", "line", "field"),
    [
        ('{"prompt": "a"}\n', 1, "completion"),
        ('{"prompt": "a", "completion": "b"}\n{"prompt": 1, "completion": "b"}\n', 2, "prompt"),
        ('{"messages": [{"role": "user", "content": "x"}]}\n', 1, "messages"),
        (
            '{"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]}\n',
            1,
            "messages",
        ),
        (
            '{"messages": [{"role": "bot", "content": "x"}, '
            '{"role": "assistant", "content": "y"}]}\n',
            1,
            "messages[0]",
        ),
        ('{"instruction": "x", "input": 3, "output": "y"}\n', 1, "input"),
        ('{"text": "x"}\n', 1, None),
        (
            '{"prompt": "a", "completion": "b"}\n{"messages": [{"role": "user", "content": "x"}, '
            '{"role": "assistant", "content": "y"}]}\n',
            2,
            None,
        ),
        ("not json\n", 1, None),
    ],
)
def test_bad_files_name_file_line_and_field(
    tmp_path: Path, content: str, line: int, field: str | None
) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        load_rows(path, TemplateSet(), EOT)
    assert (info.value.line, info.value.field) == (line, field)


def test_bad_alpaca_item_is_named(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([{"instruction": "x", "output": "y"}, {"instruction": "x"}]))
    with pytest.raises(InputError) as info:
        load_rows(path, TemplateSet(), EOT)
    assert info.value.field == "[1].output"


def test_run_without_prepared_data(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cli("bootstrap", "--out", str(out), "--backend", "fake", "--num-instructions", "3", "-q")
    with pytest.raises(InputError, match="selfinstruct prepare"):
        load_rows(out, TemplateSet(), EOT)


def test_finetune_refuses_a_non_empty_out_before_loading_anything(
    tmp_path: Path, run_dir: Path
) -> None:
    out = tmp_path / "tuned"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["finetune", "--data", str(run_dir), "--out", str(out)])
    assert result.exit_code == 2 and "not an empty directory" in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
