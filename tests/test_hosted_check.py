"""`selfinstruct validate`: chat fine-tuning files checked as the hosted service checks them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import cli

from selfinstruct.cli import main
from selfinstruct.training.hosted import check_chat_file


def example(user: str = "Name a color.", answer: str = "Blue.", **extra: object) -> str:
    return json.dumps(
        {
            "messages": [
                {"role": "user", "content": user},
                {"role": "assistant", "content": answer},
            ],
            **extra,
        }
    )


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_our_export_passes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli("run", "--out", str(run), "--backend", "fake", "--num-instructions", "20", "-q")
    result = cli(
        "export",
        "--run",
        str(run),
        "--format",
        "openai-chat",
        "--out",
        str(tmp_path / "chat.jsonl"),
    )
    assert "OK for upload" in result.stdout and "tokens per example" in result.stdout
    report = check_chat_file(tmp_path / "chat.jsonl")
    assert report.ok and report.examples >= 10 and all(t > 0 for t in report.tokens)


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ("not json", "line 11: invalid JSON"),
        ("[1, 2]", "line 11: expected a JSON object"),
        (json.dumps({"messages": []}), "line 11, field 'messages': missing or empty"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}), "no assistant message"),
        (json.dumps({"messages": [{"role": "bot", "content": "x"}]}), "unknown role 'bot'"),
        (
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": 3},
                        {"role": "assistant", "content": "y"},
                    ]
                }
            ),
            "field 'messages[0].content': expected a string",
        ),
        (
            json.dumps({"messages": [{"role": "assistant", "content": "y", "mood": 1}]}),
            "field 'messages[0].mood': unknown key",
        ),
        (json.dumps({"prompt": "x", "completion": "y"}), "field 'completion': unknown key"),
        (
            json.dumps({"messages": [{"role": "assistant", "content": "y", "weight": 2}]}),
            "must be 0 or 1",
        ),
    ],
)
def test_format_errors_are_located(tmp_path: Path, bad: str, needle: str) -> None:
    report = check_chat_file(write(tmp_path, [example()] * 10 + [bad]))
    assert not report.ok
    assert any(needle in e for e in report.errors), report.errors


def test_too_few_examples_long_examples_and_duplicates(tmp_path: Path) -> None:
    lines = [example(f"Task {i}") for i in range(9)] + [example("x" * 4000)] * 2
    report = check_chat_file(write(tmp_path, lines), token_limit=500)
    assert report.ok
    assert any("over the 500 limit" in w for w in report.warnings)
    assert any("1 duplicate examples" in w for w in report.warnings)
    report = check_chat_file(write(tmp_path, lines[:5]))
    assert any("at least 10" in e for e in report.errors)


def test_command_exits_non_zero_on_errors(tmp_path: Path) -> None:
    path = write(tmp_path, [example()] * 3)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert "at least 10" in result.stdout
    path = write(tmp_path, [example(f"Task {i}") for i in range(12)])
    result = CliRunner().invoke(main, ["validate", str(path), "--epochs", "2"])
    assert result.exit_code == 0 and "OK for upload" in result.stdout
