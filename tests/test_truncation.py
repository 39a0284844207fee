"""Bootstrap responses cut off at max_tokens: advice that fits what the responses looked like,
and the Alpaca rule (keep the complete items, drop the cut one) as a setting."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from scripted import ScriptedLLM, answer, run_against

from selfinstruct.llm.backends.fake_text import instruction
from selfinstruct.llm.base import Completion, Request
from selfinstruct.stages.bootstrap.settings import BootstrapSettings
from selfinstruct.stages.bootstrap.truncation import truncation_advice
from selfinstruct.testing.openai_server import MockOpenAIServer


def rambling(request: Request) -> Completion:
    """One item that never ends."""
    return answer(
        " Write a story about a dragon and then " + "and then " * 600, "length", request.max_tokens
    )


def listing(request: Request) -> Completion:
    """Items 9-15, then a numbering the stop sequences do not catch, until max_tokens."""
    rng = random.Random(request.seed)
    items = [instruction(rng) for _ in range(7)]
    text = " " + "\n".join(f"{9 + i}. {item}" for i, item in enumerate(items))[3:]
    text += "\n" + "\n".join(f"{n}) {instruction(rng)}" for n in range(16, 60))
    return answer(text, "length", request.max_tokens)


def cut_in_third_item(request: Request) -> Completion:
    """Two complete instructions, then a third cut off mid-sentence."""
    rng = random.Random(request.seed)
    first, second = instruction(rng), instruction(rng)
    return answer(f" {first}\n10. {second}\n11. Explain why the", "length", request.max_tokens)


def bootstrap(server: MockOpenAIServer, out: Path, config: str = "", n: int = 10):
    return run_against(
        server.base_url, out, "--num-instructions", str(n), config=config, command="bootstrap"
    )


def decisions(run: Path) -> list[tuple[int, int, str, str]]:
    with sqlite3.connect(run / "selfinstruct.db") as db:
        return db.execute(
            "SELECT request_idx, piece_idx, instruction, decision FROM candidates "
            "ORDER BY request_idx, piece_idx"
        ).fetchall()


@pytest.mark.slow  # a local HTTP server
def test_a_model_that_rambles_in_one_item_gets_advice_that_fits(tmp_path: Path) -> None:
    with MockOpenAIServer(llm=ScriptedLLM(bootstrap=rambling)) as server:
        result = bootstrap(server, tmp_path / "run")
    assert result.returncode == 2, result.stderr
    error = result.stderr
    assert (
        "every response of a bootstrap batch (5) was cut off at max_tokens (1024 tokens)" in error
    )
    assert "They held 1, 1, 1, 1, 1 list items when cut" in error
    assert "one long item instead of a list" in error
    assert "bootstrap.stop" in error and "--prompt-style chat" in error
    assert 'truncated_responses = "keep_complete_items"' in error
    assert "holds no bootstrap records yet: rerunning the same --out" in error
    assert "raise bootstrap.max_tokens" not in error


@pytest.mark.slow  # a local HTTP server
def test_a_model_that_keeps_listing_is_told_its_numbering_misses_the_stops(tmp_path: Path) -> None:
    with MockOpenAIServer(llm=ScriptedLLM(bootstrap=listing)) as server:
        result = bootstrap(server, tmp_path / "run", "[bootstrap]\nmax_tokens = 600\n")
    assert result.returncode == 2, result.stderr
    assert "They held 7, 7, 7, 7, 7 list items when cut" in result.stderr
    assert "keeps adding items" in result.stderr and "'16.'" in result.stderr
    assert "max_tokens (now 600)" in result.stderr


@pytest.mark.slow  # a local HTTP server
def test_keep_complete_items_keeps_all_but_the_cut_item(tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = '[bootstrap]\ntruncated_responses = "keep_complete_items"\n'
    with MockOpenAIServer(llm=ScriptedLLM(bootstrap=cut_in_third_item)) as server:
        result = bootstrap(server, run, config, n=10)
    assert result.returncode == 0, result.stderr
    found = decisions(run)
    cut = [row for row in found if row[3] == "truncated_item"]
    assert cut and all(row[1] == 2 and row[2] == "Explain why the" for row in cut)
    kept = [row for row in found if row[3] == "kept"]
    assert len(kept) == 10 and all(row[1] in (0, 1) for row in kept)
    assert "dropped" in result.stderr and "truncated_item" in result.stderr
    # Every response was cut, so the warning says so, and what was done with them.
    assert (
        "5 of 5 bootstrap responses were cut off at max_tokens (1024 tokens); their "
        "last, cut item was dropped" in result.stderr
    )


@pytest.mark.slow  # a local HTTP server
def test_the_paper_rule_discards_cut_responses_whole(tmp_path: Path) -> None:
    with MockOpenAIServer(llm=ScriptedLLM(bootstrap=cut_in_third_item)) as server:
        result = bootstrap(server, tmp_path / "run")
    assert result.returncode == 2
    assert "discarded whole (the paper's rule)" in result.stderr
    assert "They held 3, 3, 3, 3, 3 list items when cut" in result.stderr
    assert decisions(tmp_path / "run") == []


def test_a_run_with_records_is_told_to_use_a_new_directory() -> None:
    advice = truncation_advice(
        [2, 14, 3],
        12,
        settings=BootstrapSettings(),
        style="chat",
        stops=["16."],
        has_records=True,
        whole_batch=False,
    )
    assert advice.startswith("3 of 12 bootstrap responses were cut off at max_tokens")
    assert "They held 2, 14, 3 list items when cut" in advice
    assert "--prompt-style completion" in advice
    assert "in a new --out directory" in advice


@pytest.mark.slow  # a local HTTP server
def test_the_truncation_setting_is_checked(tmp_path: Path) -> None:
    with MockOpenAIServer() as server:
        result = bootstrap(server, tmp_path / "run", '[bootstrap]\ntruncated_responses = "x"\n')
    assert result.returncode == 2
    assert "field 'bootstrap.truncated_responses'" in result.stderr
    assert "discard, keep_complete_items" in result.stderr
