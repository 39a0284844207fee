"""Regression tests: runs that cannot progress stop, keys with control characters are
refused without being echoed, full model names reach batch files, instances batches wait
for every label of their window."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_same_nonempty, cli, read_jsonl, records_snapshot

from selfinstruct.testing.openai_server import MockOpenAIServer

FAST = "[openai]\nmax_attempts = 1\nbackoff_base = 0.01\ntimeout = 5.0\n"


@pytest.mark.slow  # a local HTTP server
def test_bootstrap_stops_when_every_request_of_a_batch_fails(tmp_path: Path) -> None:
    config = tmp_path / "fast.toml"
    config.write_text(FAST)
    with MockOpenAIServer(fault_rate=1.0, faults=("500",)) as server:
        result = cli(
            "bootstrap",
            "--out",
            str(tmp_path / "run"),
            "--backend",
            "openai",
            "--base-url",
            server.base_url,
            "--model",
            "m1",
            "--config",
            str(config),
            "--num-instructions",
            "5",
            "-q",
            check=False,
            timeout=60,
        )
    assert result.returncode == 2
    assert "every request of a bootstrap batch failed" in result.stderr


def test_bootstrap_stops_when_every_response_is_cut_off(tmp_path: Path) -> None:
    config = tmp_path / "short.toml"
    config.write_text("[bootstrap]\nmax_tokens = 5\n")
    result = cli(
        "bootstrap",
        "--out",
        str(tmp_path / "run"),
        "--backend",
        "fake",
        "--config",
        str(config),
        "--num-instructions",
        "5",
        "-q",
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "cut off at max_tokens (5 tokens)" in result.stderr
    assert "What can help" in result.stderr


def run_with_key(out: Path, server: MockOpenAIServer, key: str) -> subprocess.CompletedProcess:
    """A small run whose API key variable holds `key` as given (a real process: the key is
    read from its environment)."""
    command = ["run", "--out", str(out), "--backend", "openai", "--base-url", server.base_url]
    command += ["--model", "m1", "--api-key-env", "SI_KEY", "--num-instructions", "3", "-q"]
    return subprocess.run(
        [sys.executable, "-m", "selfinstruct", *command],
        capture_output=True,
        text=True,
        env=dict(os.environ, SI_KEY=key),
        timeout=60,
    )


@pytest.mark.slow  # a local HTTP server and a process of its own
def test_a_key_with_control_characters_is_refused_and_not_echoed(tmp_path: Path) -> None:
    secret = "sk-test-CONTROLCHAR123"
    with MockOpenAIServer() as server:
        result = run_with_key(tmp_path / "run", server, secret + "\x07")
    assert result.returncode == 2
    assert "contains spaces, control or non-ASCII characters" in result.stderr
    assert secret not in result.stderr + result.stdout
    assert all(
        secret not in p.read_text(errors="replace")
        for p in (tmp_path / "run").rglob("*")
        if p.is_file()
    )


@pytest.mark.slow  # a local HTTP server and a process of its own
def test_a_trailing_newline_in_the_key_is_ignored(tmp_path: Path) -> None:
    with MockOpenAIServer(api_key="sk-good") as server:
        result = run_with_key(tmp_path / "run", server, "sk-good\n")
    assert result.returncode == 0, result.stderr


@pytest.mark.slow  # a local HTTP server
def test_batch_files_and_cache_keys_use_the_full_model_name(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with MockOpenAIServer() as server:
        common = ["--out", str(out), "--backend", "openai", "--base-url", server.base_url]
        cli("bootstrap", *common, "--model", "org/model-7b", "--num-instructions", "5", "-q")
        batch = tmp_path / "batch.jsonl"
        cli("classify", "--out", str(out), "--batch-out", str(batch))  # the run's model
        assert {line["body"]["model"] for line in read_jsonl(batch)} == {"org/model-7b"}
        other = cli(
            "bootstrap",
            *common,
            "--model",
            "other/model-7b",
            "--num-instructions",
            "8",
            check=False,
        )
    assert other.returncode == 2
    assert "org/model-7b" in other.stderr and "other/model-7b" in other.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["model"]["model"] == "org/model-7b"


def test_instances_wait_for_every_label_of_their_batch(tmp_path: Path) -> None:
    """A classify pass that left labels out must not change the instance requests."""
    reference, faulty = tmp_path / "reference", tmp_path / "faulty"
    config = tmp_path / "retry.toml"
    config.write_text("[openai]\nmax_attempts = 1\nbackoff_base = 0.01\ntimeout = 5.0\n")
    args = ["--model", "m1", "--num-instructions", "40", "-q", "--config", str(config)]
    with MockOpenAIServer() as good:
        for out in (reference, faulty):
            cli(
                "bootstrap",
                "--out",
                str(out),
                "--backend",
                "openai",
                "--base-url",
                good.base_url,
                *args,
            )
        cli(
            "run",
            "--out",
            str(reference),
            "--backend",
            "openai",
            "--base-url",
            good.base_url,
            *args,
        )
    with MockOpenAIServer(fault_rate=0.4, faults=("500",), seed=5) as flaky:
        for _ in range(20):
            result = cli(
                "run",
                "--out",
                str(faulty),
                "--backend",
                "openai",
                "--base-url",
                flaky.base_url,
                *args,
                check=False,
            )
            counts = json.loads((faulty / "run.json").read_text())["counts"]
            if result.returncode == 0 and counts["instances"] == 40:
                break
    assert_same_nonempty(records_snapshot(faulty), records_snapshot(reference))
