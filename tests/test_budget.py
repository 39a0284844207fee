"""Budgets: `--max-tokens` and `--max-cost` stop a run before it could exceed them (requests
in flight counted at their maximum), say what was spent and what is left, and a rerun with a
larger budget continues to the records an unlimited run makes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import assert_same_nonempty, cli, store_snapshot

from selfinstruct.engine.budget import Budget
from selfinstruct.llm.base import Completion, Request
from selfinstruct.testing.openai_server import MockOpenAIServer

FAKE = ["--backend", "fake", "--num-instructions", "60", "-q"]
PRICES = ["--set", "pricing.input_per_million=2", "--set", "pricing.output_per_million=8"]
RECORDS = ("instructions", "candidates", "labels", "instances")


def spent(out: Path) -> tuple[int, float]:
    """Tokens the run's stored answers used, and their cost at PRICES."""
    with sqlite3.connect(out / "selfinstruct.db") as db:
        prompt, completion = db.execute(
            "SELECT SUM(prompt_tokens), SUM(completion_tokens) FROM responses"
        ).fetchone()
    return prompt + completion, (prompt * 2 + completion * 8) / 1e6


def test_max_tokens_stops_within_the_limit_and_a_larger_budget_continues(tmp_path: Path) -> None:
    reference, out = tmp_path / "reference", tmp_path / "run"
    cli("run", "--out", str(reference), *FAKE)
    total, _ = spent(reference)
    limits = [total // 4, total // 2, total * 10]
    for limit in limits[:2]:
        result = cli("run", "--out", str(out), *FAKE, "--max-tokens", str(limit), check=False)
        assert result.returncode == 3, result.stderr
        assert "budget reached" in result.stderr and f"of --max-tokens {limit:,}" in result.stderr
        assert "rerun with a larger --max-tokens or --max-cost" in result.stderr
        assert spent(out)[0] <= limit
    cli("run", "--out", str(out), *FAKE, "--max-tokens", str(limits[-1]))
    assert_same_nonempty(store_snapshot(out), store_snapshot(reference))


def test_the_message_names_the_stage_and_what_is_left(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = cli("run", "--out", str(out), *FAKE, "--max-tokens", "3000", check=False)
    assert result.returncode == 3
    assert "bootstrap has" in result.stderr and "of the 60 instructions asked for" in result.stderr
    cli("bootstrap", "--out", str(out), *FAKE)
    result = cli(
        "run", "--out", str(out), *FAKE, "--max-tokens", str(spent(out)[0] + 500), check=False
    )
    assert result.returncode == 3
    assert "classify has" in result.stderr and "instructions left" in result.stderr


def test_max_cost_with_prices(tmp_path: Path) -> None:
    reference, out = tmp_path / "reference", tmp_path / "run"
    cli("run", "--out", str(reference), *FAKE, *PRICES)
    _, cost = spent(reference)
    result = cli(
        "run", "--out", str(out), *FAKE, *PRICES, "--max-cost", f"{cost / 3:.6f}", check=False
    )
    assert result.returncode == 3 and "of --max-cost" in result.stderr
    assert spent(out)[1] <= cost / 3 + 1e-9
    cli("run", "--out", str(out), *FAKE, *PRICES, "--max-cost", f"{cost * 2:.6f}")
    assert_same_nonempty(store_snapshot(out), store_snapshot(reference))


def test_max_cost_without_prices_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = cli("run", "--out", str(out), *FAKE, "--max-cost", "1", check=False)
    assert result.returncode != 0 and "--max-cost needs prices" in result.stderr
    assert not (out / "selfinstruct.db").exists()


@pytest.mark.slow  # a local HTTP server and a process of its own
def test_a_budget_holds_with_many_requests_in_flight(tmp_path: Path) -> None:
    """Against a server with 32 requests in flight, the reservations keep the spending under
    the limit: every answer that arrives after the stop was reserved for."""
    out = tmp_path / "run"
    args = ["--backend", "openai", "--model", "fake", "--concurrency", "32"]
    args += ["--batches-in-flight", "8", "--num-instructions", "400", "-q"]
    with MockOpenAIServer(latency=0.02) as server:
        args += ["--base-url", server.base_url]
        for limit in (20_000, 60_000):
            result = cli("run", "--out", str(out), *args, "--max-tokens", str(limit), check=False)
            assert result.returncode == 3 and "budget reached" in result.stderr
            assert spent(out)[0] <= limit
        cli("run", "--out", str(out), *args)
    with sqlite3.connect(out / "selfinstruct.db") as db:
        assert db.execute("SELECT COUNT(*) FROM instances").fetchone()[0] == 400


def _request(prompt: str, max_tokens: int) -> Request:
    return Request(prompt=prompt, max_tokens=max_tokens)


def test_reservations_bound_prompts_by_bytes_until_answers_tell_more() -> None:
    budget = Budget(max_tokens=1100)
    first = budget.reserve("bootstrap", _request("x" * 400, 100))
    assert first is not None and first.prompt_tokens == 400 + 16  # bytes plus overhead
    assert budget.reserve("bootstrap", _request("y" * 400, 100)) is not None
    assert budget.reserve("bootstrap", _request("z" * 400, 100)) is None  # 1,548 > 1,100
    assert budget.refused == "bootstrap"
    answer = Completion("ok", "stop", prompt_tokens=100, completion_tokens=20)
    budget.settle("bootstrap", _request("x" * 400, 100), first, answer)
    assert budget.spent_tokens == 120 and budget.reserved_tokens == 516
    # 100 tokens for 400 bytes: later prompts are bounded at that ratio with a margin.
    later = Budget(max_tokens=10_000, tokens_per_byte=0.25)
    held = later.reserve("classify", _request("w" * 400, 10))
    assert held is not None and held.prompt_tokens == 125 + 1 + 16


@pytest.mark.parametrize("flag", ["--max-tokens", "--max-cost"])
def test_negative_budgets_are_refused(tmp_path: Path, flag: str) -> None:
    result = cli("run", "--out", str(tmp_path / "run"), *FAKE, flag, "-1", check=False)
    assert result.returncode == 2 and flag in result.stderr


def test_the_python_api_takes_a_budget(tmp_path: Path) -> None:
    import selfinstruct

    run = selfinstruct.Run.create(tmp_path / "run", backend="fake", num_instructions=60, quiet=True)
    with pytest.raises(selfinstruct.BudgetExhausted, match="budget reached"):
        run.with_budget(max_tokens=5000).generate()
    assert spent(tmp_path / "run")[0] <= 5000
    stats = run.with_budget(max_tokens=10_000_000).generate()
    assert stats["instances"].kept == 60
