"""Reading a judge's answers and a model's labels, the criteria prepare applies, and judge
calibration on our labelled file (a judge that answers from the labels agrees perfectly)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import cli

from selfinstruct.llm.backends.fake import FakeLLM
from selfinstruct.llm.base import Completion, Request
from selfinstruct.llm.fake_answers import prompt_text
from selfinstruct.quality.calibration import Labelled, packaged_path, read_labelled
from selfinstruct.quality.consistency import agrees, answered_label, label_set
from selfinstruct.quality.judgment import Criteria, Judgment, parse_judgment
from selfinstruct.testing.openai_server import MockOpenAIServer

FULL = (
    "Valid task: yes | A clear task.\nAppropriate input: no | The input is unrelated.\n"
    "Correct output: no | Wrong sum.\nRating: C | Responsive but wrong."
)


def test_a_full_answer_is_read_with_its_reasons() -> None:
    found = parse_judgment(FULL, "chat")
    assert found.answers == {"instruction": True, "input": False, "output": False}
    assert found.rating == "C" and found.readable and not found.all_yes
    assert found.reasons["input"] == "The input is unrelated."
    assert found.reasons["rating"] == "Responsive but wrong."


def test_a_completion_answer_continues_the_prompts_first_label() -> None:
    text = FULL.removeprefix("Valid task:")
    assert parse_judgment(text, "completion") == parse_judgment(FULL, "chat")


@pytest.mark.parametrize(
    "text",
    [
        "**Valid task:** Yes - fine.\n**Appropriate input:** YES. ok\n"
        "**Correct output:** no, wrong\n**Rating:** B - minor",
        "1. Valid task: yes\n2. Appropriate input: yes\n3. Correct output: no\n4. Rating: b",
        "Valid task : yes\nAppropriate input:yes\nCorrect output: no\nRating: B\n\n"
        "Valid task: no\nRating: D",  # a second review written on: the first one counts
    ],
)
def test_answers_in_common_variations_are_read(text: str) -> None:
    found = parse_judgment(text, "chat")
    assert found.readable
    assert found.answers["output"] is False and found.rating == "B"


@pytest.mark.parametrize(
    "text",
    [
        "This example looks fine to me.",
        "Valid task: yes\nAppropriate input: yes\nCorrect output: yes",  # no rating
        "Valid task: maybe\nAppropriate input: yes\nCorrect output: yes\nRating: A",
        "Valid task: yes\nAppropriate input: yes\nCorrect output: yes\nRating: Average",
    ],
)
def test_unreadable_answers_are_never_guessed(text: str) -> None:
    found = parse_judgment(text, "chat")
    assert not found.readable


def test_criteria() -> None:
    good = Judgment({"instruction": True, "input": True, "output": True}, "B", {})
    bad = Judgment({"instruction": True, "input": True, "output": False}, "C", {"rating": "x"})
    assert Criteria("B").failures(good) == []
    assert Criteria("A").failures(good) == [("rating", "rating B")]
    assert Criteria("", ("output",)).failures(bad) == [("output", "output: no")]
    assert Criteria("B", ("output",)).failures(bad) == [
        ("output", "output: no"),
        ("rating", "rating C"),
    ]
    assert not Criteria().active


def test_label_agreement() -> None:
    labels = ["Positive", "Negative", "Very positive"]
    assert agrees("Positive", "Positive", labels) is True
    assert agrees(" negative.\nBecause...", "Positive", labels) is False
    assert agrees("The label is: Very positive", "Very positive", labels) is True
    assert answered_label("Very positive", labels) == "Very positive"  # not "Positive"
    assert agrees("Positive or negative", "Positive", labels) is None  # two labels named
    assert agrees("I cannot tell.", "Positive", labels) is None
    assert label_set(["Yes", "no", "yes ", "No", ""]) == ["Yes", "no"]


# -- calibration --------------------------------------------------------------------------------
FLAWS = {
    "invalid_instruction",
    "inappropriate_input",
    "wrong_output",
    "restates_input",
    "truncated_output",
}


def test_the_packaged_labelled_file() -> None:
    items = read_labelled(packaged_path())
    raw = [json.loads(line) for line in packaged_path().read_text().splitlines()]
    assert len(items) >= 120
    flaws = Counter(item.flaw for item in items)
    assert set(flaws) == FLAWS | {"none"}
    assert 0.4 <= (len(items) - flaws["none"]) / len(items) <= 0.6
    for item, line in zip(items, raw, strict=True):
        expected = {
            "none": (True, True, True),
            "invalid_instruction": (False, False, False),
            "inappropriate_input": (True, False, False),
        }.get(item.flaw, (True, True, False))
        assert tuple(item.answers.values()) == expected, item.id
        assert (item.rating in "AB") == (item.flaw == "none"), item.id
        assert line["note"].strip()
    assert 0.2 <= sum(line["is_classification"] for line in raw) / len(raw) <= 0.5


def labelled_answer(item: Labelled, style: str) -> str:
    said = {True: "yes", False: "no"}
    lines = [
        f"Valid task: {said[item.answers['instruction']]} | From the label.",
        f"Appropriate input: {said[item.answers['input']]} | From the label.",
        f"Correct output: {said[item.answers['output']]} | From the label.",
        f"Rating: {item.rating} | From the label.",
    ]
    text = "\n".join(lines)
    return text.removeprefix("Valid task:") if style == "completion" else text


class LabelsJudge(FakeLLM):
    """A judge that answers every review from the human labels of the instance it is shown."""

    def __init__(self, items: Sequence[Labelled], style: str) -> None:
        super().__init__(model="labels")
        self.blocks = [
            (f"Instruction: {i.instruction}\nInput: {i.input or '(none)'}\nOutput: {i.output}", i)
            for i in items
        ]
        self.style = style

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        answers = []
        for request in requests:
            text = prompt_text(request)
            item = next(i for block, i in self.blocks if block in text)
            answers.append(Completion(labelled_answer(item, self.style), "stop", 100, 40))
        return answers


@pytest.mark.parametrize("style", ["chat", "completion"])
@pytest.mark.slow  # a local HTTP server
def test_a_judge_answering_from_the_labels_agrees_perfectly(tmp_path: Path, style: str) -> None:
    items = read_labelled(packaged_path())
    with MockOpenAIServer(llm=LabelsJudge(items, style)) as server:
        result = cli(
            "judge",
            "--calibrate",
            "packaged",
            "--judge",
            "openai:labels",
            "--judge-base-url",
            server.base_url,
            "--judge-prompt-style",
            style,
            "--out",
            tmp_path,
            "--quiet",
        )
    found = json.loads((tmp_path / "calibration.json").read_text())
    assert found["items"] == found["compared"] == len(items)
    for name in ("instruction", "input", "output", "all three"):
        row = found["questions"][name]
        assert (row["accuracy"], row["reject_precision"], row["reject_recall"], row["kappa"]) == (
            1.0,
            1.0,
            1.0,
            1.0,
        ), name
    assert found["rating"]["exact_agreement"] == 1.0 and found["rating"]["kappa"] == 1.0
    assert "instruction" in result.stdout and "100.0%" in result.stdout


def test_calibration_counts_unreadable_answers_apart(tmp_path: Path) -> None:
    result = cli("judge", "--calibrate", "packaged", "--judge", "fake", "--quiet")
    assert "130 labelled instances" in result.stdout
    assert "unparseable" in result.stdout


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('{"id": "a", "instruction": "x", "output": "y", "rating": "A"}', "labels"),
        (
            '{"id": "a", "instruction": "x", "output": "y", "rating": "A", "labels": '
            '{"instruction": "yes", "input": "maybe", "output": "yes"}}',
            "labels.input",
        ),
        (
            '{"id": "a", "instruction": "x", "output": "y", "rating": "E", "labels": '
            '{"instruction": "yes", "input": "yes", "output": "yes"}}',
            "rating",
        ),
    ],
)
def test_a_bad_labelled_file_is_named_with_line_and_field(
    tmp_path: Path, line: str, field: str
) -> None:
    path = tmp_path / "labels.jsonl"
    good = (
        '{"id": "z", "instruction": "x", "output": "y", "rating": "A", "labels": '
        '{"instruction": "yes", "input": "yes", "output": "yes"}}'
    )
    path.write_text(good + "\n" + line + "\n")
    result = cli("judge", "--calibrate", str(path), "--judge", "fake", check=False)
    assert result.returncode != 0
    assert f"{path}, line 2" in result.stderr and field in result.stderr


@pytest.mark.embedded
def test_the_embedded_model_as_judge_on_part_of_the_labelled_file(tmp_path: Path) -> None:
    lines = packaged_path().read_text().splitlines()[:6]
    path = tmp_path / "six.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = cli(
        "judge", "--calibrate", str(path), "--judge", "embedded", "--out", tmp_path, "--quiet"
    )
    found = json.loads((tmp_path / "calibration.json").read_text())
    assert found["items"] == 6
    assert found["compared"] + found["unparseable"] + found["failed"] == 6
    assert "labelled instances" in result.stdout


def test_calibration_writes_each_answer_beside_the_numbers(tmp_path: Path) -> None:
    cli("judge", "--calibrate", "packaged", "--judge", "fake", "--out", tmp_path, "--quiet")
    answers = [json.loads(line) for line in (tmp_path / "calibration_answers.jsonl").open()]
    assert len(answers) == len(read_labelled(packaged_path()))
    first = answers[0]
    assert set(first) == {"id", "flaw", "labels", "rating", "answer", "judged"}
    assert first["answer"] and set(first["judged"]) == {"instruction", "input", "output", "rating"}
