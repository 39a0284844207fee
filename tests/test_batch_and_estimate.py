"""Batch files round trip (OpenAI Batch API JSONL out, results in) and --estimate."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from conftest import assert_same_nonempty, cli, read_jsonl, records_snapshot

from selfinstruct.testing.openai_server import MockOpenAIServer


@pytest.fixture(scope="module")
def server():
    with MockOpenAIServer() as running:
        yield running


def _common(out: Path, server: MockOpenAIServer) -> list[str]:
    """The options of a command that starts the run (the model is the run's from then on)."""
    return [*_served(out, server), "--backend", "openai", "--model", "m1"]


def _served(out: Path, server: MockOpenAIServer) -> list[str]:
    """The options of a stage on the run: where its requests go."""
    return ["--out", str(out), "--base-url", server.base_url, "-q"]


def _answer_batch(server: MockOpenAIServer, batch: Path, results: Path) -> int:
    """Play the batch service: answer each line's body, write the results file."""
    lines = read_jsonl(batch)
    with results.open("w", encoding="utf-8") as handle:
        for i, line in enumerate(lines):
            assert line["method"] == "POST"
            assert line["url"] in ("/v1/completions", "/v1/chat/completions")
            url = server.base_url + line["url"].removeprefix("/v1")
            body = httpx.post(url, json=line["body"], timeout=30).json()
            handle.write(
                json.dumps(
                    {
                        "id": f"batch_req_{i}",
                        "custom_id": line["custom_id"],
                        "response": {"status_code": 200, "body": body},
                        "error": None,
                    }
                )
                + "\n"
            )
    return len(lines)


@pytest.mark.slow  # a live run, then the same run through batch files: 7 CLI runs per style
@pytest.mark.parametrize("style", ["completion", "chat"])
def test_batch_round_trip_equals_a_live_run(
    server: MockOpenAIServer, tmp_path: Path, style: str
) -> None:
    live, batched = tmp_path / "live", tmp_path / "batched"
    n = ["--num-instructions", "25", "--prompt-style", style]
    cli("run", *_common(live, server), *n)
    cli("bootstrap", *_common(batched, server), *n)
    for stage in ("classify", "instances"):
        batch, results = tmp_path / f"{stage}.jsonl", tmp_path / f"{stage}_out.jsonl"
        out = cli(stage, *_served(batched, server), "--batch-out", str(batch)).stdout
        assert f"wrote 25 {stage} requests" in out
        assert _answer_batch(server, batch, results) == 25
        before = server.stats["requests"]
        result = cli(stage, *_served(batched, server), "--batch-in", str(results))
        assert server.stats["requests"] == before, "the stage called the server"
        assert '"stored": 25' in result.stderr
    cli("prepare", "--out", str(batched), "-q")
    assert_same_nonempty(records_snapshot(batched), records_snapshot(live))
    assert (batched / "exports/alpaca.json").read_text() == (
        live / "exports/alpaca.json"
    ).read_text()


@pytest.mark.slow  # a local HTTP server
def test_batch_out_skips_cached_requests_and_batch_in_ignores_strangers(
    server: MockOpenAIServer, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    cli("bootstrap", *_common(out, server), "--num-instructions", "10")
    cli("classify", *_served(out, server))
    batch = tmp_path / "batch.jsonl"
    assert (
        "wrote 0 classify requests"
        in cli("classify", *_served(out, server), "--batch-out", str(batch)).stdout
    )
    strangers = tmp_path / "strangers.jsonl"
    strangers.write_text(
        json.dumps({"custom_id": "nope", "response": {"status_code": 200, "body": {}}}) + "\n"
    )
    result = cli("instances", *_served(out, server), "--batch-in", str(strangers))
    assert '"not_pending": 1' in result.stderr


@pytest.mark.slow  # a local HTTP server
def test_batch_in_with_a_broken_line_names_file_and_line(
    server: MockOpenAIServer, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    cli("bootstrap", *_common(out, server), "--num-instructions", "5")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"custom_id": "a", "response": {}}\n{not json\n')
    result = cli("classify", *_served(out, server), "--batch-in", str(broken), check=False)
    assert result.returncode == 2
    assert f"{broken}, line 2" in result.stderr


def test_estimate_prints_requests_tokens_and_cost_without_writing(tmp_path: Path) -> None:
    config = tmp_path / "prices.toml"
    config.write_text("[pricing]\ninput_per_million = 2.0\noutput_per_million = 8.0\n")
    out = tmp_path / "run"
    result = cli(
        "run",
        "--out",
        str(out),
        "--backend",
        "fake",
        "--num-instructions",
        "90",
        "--config",
        str(config),
        "--estimate",
    )
    assert not out.exists()
    lines = result.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[1:5]}
    assert rows["bootstrap"][1] == "30"  # 90 at the assumed 3 kept per request
    assert rows["classify"][1] == "90" and rows["instances"][1] == "90"
    assert "expected cost: $" in result.stdout


def test_estimate_uses_what_the_run_has_seen(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cli("run", "--out", str(out), "--backend", "fake", "--num-instructions", "40", "-q")
    result = cli(
        "run", "--out", str(out), "--backend", "fake", "--num-instructions", "80", "--estimate"
    )
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:5]}
    assert rows["classify"][1] == "40" and rows["instances"][1] == "40"
    assert "kept per request so far" in result.stdout
    assert int(rows["bootstrap"][1]) > 0
