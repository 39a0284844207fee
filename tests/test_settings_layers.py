"""One way to layer settings for every command: packaged defaults < config file < flags <
--set SECTION.KEY=VALUE (and, when resuming, the run's stored settings at the bottom)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli

from selfinstruct.errors import InputError
from selfinstruct.run.layers import Layers, layered, parse_set


def config_of(run: Path) -> dict:
    return json.loads((run / "run.json").read_text(encoding="utf-8"))["config"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bootstrap.temperature=1", ("bootstrap.temperature", 1)),
        ("bootstrap.temperature = 0.25", ("bootstrap.temperature", 0.25)),
        ("prepare.include_seed_tasks=true", ("prepare.include_seed_tasks", True)),
        ('instances.stop=["Task:", "\\n\\n"]', ("instances.stop", ["Task:", "\n\n"])),
        (
            "openai.base_url=http://127.0.0.1:8000/v1",
            ("openai.base_url", "http://127.0.0.1:8000/v1"),
        ),
        ('embedded.chat_format="chatml"', ("embedded.chat_format", "chatml")),
        ("num_instructions=7", ("num_instructions", 7)),
    ],
)
def test_values_are_read_as_toml_or_plain_text(text: str, expected: tuple) -> None:
    assert parse_set(text) == expected


@pytest.mark.parametrize("text", ["bootstrap.temperature", "=1", "bootstrap..x=1", ".x=1"])
def test_malformed_assignments_are_refused(text: str) -> None:
    with pytest.raises(InputError, match=r"expected SECTION\.KEY=VALUE"):
        parse_set(text)


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        "num_instructions = 11\nrandom_seed = 5\n[bootstrap]\ntemperature = 0.1\ntop_p = 0.2\n"
    )
    given = {"random_seed": 6, "bootstrap": {"top_p": 0.3}}
    layers = Layers(config, given, ("bootstrap.top_p=0.4",))
    found = layered(layers)
    assert found.num_instructions == 11  # the file over the default (100)
    assert found.random_seed == 6  # a flag over the file
    assert found.bootstrap.temperature == 0.1  # the file
    assert found.bootstrap.top_p == 0.4  # --set over the flag
    assert found.classify.max_tokens == 3  # the default


def test_set_reaches_the_run_and_its_fingerprint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli(
        "bootstrap",
        "--out",
        str(run),
        "--backend",
        "fake",
        "--num-instructions",
        "4",
        "-q",
        "--set",
        "bootstrap.temperature=1",
        "--set",
        "classify.max_tokens=4",
    )
    assert config_of(run)["bootstrap"]["temperature"] == 1.0
    assert config_of(run)["classify"]["max_tokens"] == 4
    changed = cli("run", "--out", str(run), "--set", "bootstrap.temperature=0.5", check=False)
    assert changed.returncode == 2
    assert "bootstrap.temperature: 1.0 -> 0.5" in changed.stderr
    cli("run", "--out", str(run), "-q")  # the stored settings carry on
    assert config_of(run)["classify"]["max_tokens"] == 4


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("bootstrap.nonexistent=1", "field 'bootstrap.nonexistent': unknown setting"),
        ("bootstrap.temperature=hot", "field 'bootstrap.temperature': expected a number"),
        ("bootstrap.temperature=9", "field 'bootstrap.temperature': must be between 0 and 2"),
        ("nonexistent.key=1", "field 'nonexistent': unknown setting"),
        ("seeds.x=1", "'seeds' is a setting, not a section"),
    ],
)
def test_bad_assignments_name_the_option_and_field(
    tmp_path: Path, assignment: str, message: str
) -> None:
    result = cli(
        "run", "--out", str(tmp_path / "run"), "--backend", "fake", "--set", assignment, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: --set")
    assert message in result.stderr
    assert not (tmp_path / "run").exists()


def test_evaluate_and_finetune_take_set(tmp_path: Path) -> None:
    result = cli(
        "evaluate",
        "--candidate",
        "a=fake",
        "--out",
        str(tmp_path / "e"),
        "--max-tasks",
        "2",
        "--set",
        "prepare.end_of_text=<END>",
        "-q",
    )
    assert "summary.json" in result.stdout
    bad = cli(
        "finetune",
        "--data",
        str(tmp_path),
        "--out",
        str(tmp_path / "f"),
        "--set",
        "prepare.nonexistent=1",
        check=False,
    )
    assert bad.returncode == 2
    assert "field 'prepare.nonexistent': unknown setting" in bad.stderr
