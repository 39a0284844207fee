"""Generated code that contains our markers ("# Output: True") reaches the dataset whole,
through a real run against a local OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripted import ScriptedLLM, answer, run_against

from selfinstruct.llm.base import Completion, Request
from selfinstruct.testing.openai_server import MockOpenAIServer

CODE = (
    "def is_even(n):\n    return n % 2 == 0\n\n"
    "print(is_even(4))  # Output: True\nprint(is_even(7))  # Output: False"
)
ANSWER = (
    "Example 1\nNumber: 4\nOutput:\n" + CODE + "\n\n"
    "Example 2\nNumber: 10\nOutput: ```python\nprint(10 % 2 == 0)\nOutput: True\n```\n\n"
)


def code_answer(request: Request) -> Completion:
    return answer(ANSWER)


@pytest.mark.slow  # a local HTTP server
def test_code_with_marker_comments_is_kept_whole(tmp_path: Path) -> None:
    run = tmp_path / "run"
    llm = ScriptedLLM(instances_generation=code_answer)
    with MockOpenAIServer(llm=llm) as server:
        result = run_against(
            server.base_url,
            run,
            "--num-instructions",
            "6",
            config="[prepare]\nmax_instances_per_task = 5\n",
        )
    assert result.returncode == 0, result.stderr
    records = json.loads((run / "exports" / "alpaca.json").read_text())
    outputs = {r["output"] for r in records if r["input"] in ("Number: 4", "4")}
    assert outputs == {CODE}
    fenced = {r["output"] for r in records if r["input"] in ("Number: 10", "10")}
    assert fenced == {"```python\nprint(10 % 2 == 0)\nOutput: True\n```"}
