"""The whole pipeline over `--backend openai` against a real llama.cpp server
(`python -m llama_cpp.server` serving the packaged SmolLM2-135M GGUF on 127.0.0.1)."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import cli, read_jsonl

pytestmark = pytest.mark.embedded

ALIAS = "smollm2"
STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A llama.cpp OpenAI-compatible server on a free local port; yields its base URL."""
    from selfinstruct.llm.model_file import packaged_model_path

    model = packaged_model_path()  # the embedded extra's model, in the test extra
    assert model.is_file(), f"the packaged model {model} is missing"
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "4096",
                "--model_alias",
                ALIAS,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"llama_cpp.server exited with {process.returncode}:\n"
                    f"{log_path.read_text(errors='replace')[-3000:]}"
                )
            try:
                response = httpx.get(f"{base_url}/models", timeout=2)
                if response.status_code == 200:
                    served = [m["id"] for m in response.json()["data"]]
                    assert ALIAS in served, served
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"llama_cpp.server not ready after {STARTUP_SECONDS} s:\n"
                    f"{log_path.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.25)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.mark.parametrize("style", ["completion", "chat"])
def test_pipeline_over_a_llama_cpp_server(style: str, llama_server: str, tmp_path: Path) -> None:
    out = tmp_path / style
    result = cli(
        "run",
        "--out",
        str(out),
        "--backend",
        "openai",
        "--base-url",
        llama_server,
        "--model",
        ALIAS,
        "--num-instructions",
        "3",
        "--prompt-style",
        style,
        timeout=300,
    )
    assert result.returncode == 0

    summaries = {}
    for line in result.stderr.splitlines():
        match = re.match(r"\[(\w+)\] .*tokens (\d+) in / (\d+) out", line)
        if match:
            summaries[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    assert set(summaries) >= {"bootstrap", "classify", "instances", "prepare", "total"}
    for stage in ("bootstrap", "classify", "instances"):
        assert summaries[stage][0] > 0, (stage, result.stderr)
    assert summaries["bootstrap"][1] > 0 and summaries["total"][1] > 0
    assert "failed requests" not in result.stderr

    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert info["model"] == {"backend": "openai", "model": ALIAS, "base_url": llama_server}
    assert info["counts"] == {"instructions": 3, "labels": 3, "instances": 3}

    instructions = read_jsonl(out / "machine_generated_instructions.jsonl")
    assert len(instructions) == 3
    for record in instructions:
        assert len(record["instruction"].split()) >= 4
        assert record["metadata"]["response"]["text"]
    labels = read_jsonl(out / f"is_clf_or_not_{ALIAS}_{style}.jsonl")
    assert len(labels) == 3
    assert all(isinstance(r["is_classification"], str) for r in labels)
    assert len(read_jsonl(out / "machine_generated_instances.jsonl")) == 3

    alpaca = json.loads((out / "exports/alpaca.json").read_text(encoding="utf-8"))
    assert isinstance(alpaca, list)
    assert all(set(r) == {"instruction", "input", "output"} for r in alpaca)
    chat = read_jsonl(out / "exports/openai_chat.jsonl")
    completions = read_jsonl(out / "exports/prompt_completion.jsonl")
    assert len(chat) == len(alpaca)
    assert all(set(r) >= {"prompt", "completion"} for r in completions)
    for name in (
        "exports/alpaca.json",
        "exports/openai_chat.jsonl",
        "exports/prompt_completion.jsonl",
    ):
        assert name in result.stdout


def test_a_judge_behind_a_llama_cpp_server(llama_server: str, tmp_path: Path) -> None:
    """The generator is the fake model; every instance is judged once by the llama.cpp
    server's model, and a rerun asks it nothing."""
    out = tmp_path / "judged"
    args = (
        "--out",
        str(out),
        "--backend",
        "fake",
        "--num-instructions",
        "3",
        "--judge",
        f"openai:{ALIAS}",
        "--judge-base-url",
        llama_server,
        "--judge-prompt-style",
        "chat",
        "--set",
        'prepare.min_rating=""',  # a 135M judge: record, do not filter
        "--set",
        "prepare.report=false",
    )
    result = cli("run", *args, timeout=600)
    assert "failed requests" not in result.stderr
    with sqlite3.connect(out / "selfinstruct.db") as db:
        judged = db.execute(
            "SELECT instruction_id, position FROM judgments ORDER BY 1, 2"
        ).fetchall()
        instances = db.execute(
            "SELECT instruction_id, position FROM parsed_instances ORDER BY 1, 2"
        ).fetchall()
    assert judged == instances and judged
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert info["config"]["judge"]["base_url"] == llama_server
    again = cli("run", *args, timeout=300)
    # said only when no stage, the judge included, sent a request or took one from the cache
    assert re.search(r"^\[run\] already complete: ", again.stderr, re.M), again.stderr
