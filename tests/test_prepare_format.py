"""Stage 4 formatting: input augmentation, prompt/completion layouts, templates, build, JSONL."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest

from selfinstruct.config import Config
from selfinstruct.console.stats import StageStats
from selfinstruct.dataset.finetune_format import augment_input, encode
from selfinstruct.errors import InputError
from selfinstruct.exporters.records import Example, PromptCompletion
from selfinstruct.io.atomic import json_line, write_jsonl
from selfinstruct.prompts import FinetuneLayout, TemplateSet
from selfinstruct.run.layers import defaults
from selfinstruct.seeds.task import Instance, SeedTask
from selfinstruct.stages.prepare import build
from selfinstruct.stages.registry import template_spec, template_specs
from selfinstruct.views.tasks import GeneratedTask, parse_task

EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def layouts():
    return TemplateSet().finetune_layouts()


def single_layouts(prompt_with: str, prompt_without: str) -> dict[str, list[FinetuneLayout]]:
    completion = string.Template("${output}${end_of_text}")
    return {
        "with_input": [FinetuneLayout(string.Template(prompt_with), completion)],
        "without_input": [FinetuneLayout(string.Template(prompt_without), completion)],
    }


# --------------------------------------------------------------------------------------------
# augment_input
# --------------------------------------------------------------------------------------------


class AlwaysLow(random.Random):
    def random(self) -> float:
        return 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sentence: The cat sat.", "The cat sat."),
        ("Sentence:   The cat sat.  ", "The cat sat."),
        ("Paragraph: First part.\n\nSecond part.", "First part.\nSecond part."),
        ("Sentence: a\nWord: b", "Sentence: a\nWord: b"),
        ("Sentence: a\n\nWord: b", "Sentence: a\nWord: b"),
        (
            "Question: what?\n\nAnswer: that\n\nQuestion: why?",
            "Question: what?\nAnswer: that\nQuestion: why?",
        ),
        ("no field here\n\nat all", "no field here\nat all"),
        ("Time: 10:30", "Time: 10:30"),  # two distinct "word:" names (Time, 10)
        ("", ""),
    ],
)
def test_augment_input_with_probability_one(text, expected):
    assert augment_input(text, random.Random(0), 1.0) == expected


@pytest.mark.parametrize(
    "text", ["Sentence: The cat sat.", "Paragraph: a\n\nb", "Sentence: a\nWord: b", ""]
)
def test_augment_input_with_probability_zero_is_unchanged(text):
    rng = random.Random(0)
    for _ in range(20):
        assert augment_input(text, rng, 0.0) == text


def test_augment_input_applies_with_the_given_probability():
    rng = random.Random(11)
    changed = sum(augment_input("Sentence: hi", rng, 0.5) == "hi" for _ in range(2000))
    assert 850 < changed < 1150
    rng = random.Random(11)
    changed = sum(augment_input("Sentence: hi", rng, 0.1) == "hi" for _ in range(2000))
    assert 120 < changed < 280


def test_augment_input_is_deterministic_for_a_seeded_rng():
    first = [augment_input("Word: x\n\ny", random.Random(5), 0.5) for _ in range(3)]
    rng_a, rng_b = random.Random(9), random.Random(9)
    a = [augment_input("Word: x\n\ny", rng_a, 0.5) for _ in range(50)]
    b = [augment_input("Word: x\n\ny", rng_b, 0.5) for _ in range(50)]
    assert a == b
    assert len(set(first)) == 1
    assert set(a) == {"Word: x\n\ny", "x\ny"}


# --------------------------------------------------------------------------------------------
# encode
# --------------------------------------------------------------------------------------------


def test_encode_picks_layout_by_input(layouts):
    with_input = Example(" Translate to French. ", " Good morning ", " Bonjour ")
    without_input = Example("Tell me a joke.", "   ", "Why did the chicken...")
    prompts_with, prompts_without = set(), set()
    for seed in range(300):
        rng = random.Random(seed)
        record = encode(with_input, layouts, rng, EOT)
        assert isinstance(record, PromptCompletion)
        assert "Translate to French." in record.prompt
        assert "Good morning" in record.prompt
        assert " Good morning " not in record.prompt
        assert record.completion.endswith("Bonjour" + EOT)
        prompts_with.add(record.prompt)

        record = encode(without_input, layouts, rng, EOT)
        assert "Tell me a joke." in record.prompt
        assert "Input" not in record.prompt
        assert record.completion.endswith("Why did the chicken..." + EOT)
        prompts_without.add(record.prompt)
    assert len(prompts_with) == 7
    assert len(prompts_without) == 6


def test_encode_exact_layout_and_custom_marker():
    layouts = single_layouts("${instruction}\nIN: ${input}\n", "${instruction}\n")
    rng = random.Random(0)
    assert encode(Example("Do it.", "x", "y"), layouts, rng, "</s>") == PromptCompletion(
        "Do it.\nIN: x\n", "y</s>"
    )
    assert encode(Example("Do it.", "", "y"), layouts, rng, "</s>") == PromptCompletion(
        "Do it.\n", "y</s>"
    )


def test_encode_does_not_interpret_dollar_signs_in_values():
    layouts = single_layouts("${instruction} ${input}", "${instruction}")
    record = encode(
        Example("Price in $USD", "${output}", "$5 and $$"), layouts, random.Random(0), EOT
    )
    assert record == PromptCompletion("Price in $USD ${output}", "$5 and $$" + EOT)


# --------------------------------------------------------------------------------------------
# TemplateSet and finetune.toml
# --------------------------------------------------------------------------------------------


VALUES = {
    "bootstrap": {"tasks": "1. Alpha task.\n2. Beta task.\n3.", "next_number": 3, "last_number": 4},
    "bootstrap_classification": {
        "tasks": "1. Alpha task.\n2. Beta task.\n3.",
        "next_number": 3,
        "last_number": 4,
    },
    "classify": {"instruction": "Is this email spam?"},
    "instances_classification": {"instruction": "Is this email spam?", "max_instances": 5},
    "instances_generation": {"instruction": "Summarize the text.", "max_instances": 5},
    "relabel": {"instruction": "Is this email spam?", "labels": "Spam, Not spam", "input": "Hi"},
    "judge_instance": {"instruction": "Add the numbers.", "input": "2, 3", "output": "5"},
}
# How each template shows its target task (default: "Task: <instruction>").
TARGET = {"judge_instance": "Instruction: {instruction}\nInput: {input}\nOutput: {output}"}
FEWSHOT_MARK = {
    "judge_instance": "Convert the distance to meters.",
    "classify": "Is it classification?",
    "instances_classification": "Class label:",
    "instances_generation": "Example 1",
}


@pytest.mark.parametrize("name", [spec.name for spec in template_specs()])
def test_render_completion_templates(name):
    prompt = TemplateSet().render("completion", template_spec(name), **VALUES[name])
    assert prompt.messages is None
    text = prompt.text
    assert "${" not in text
    if name.startswith("bootstrap"):
        assert VALUES[name]["tasks"] in text
    else:
        assert TARGET.get(name, "Task: {instruction}").format(**VALUES[name]) in text
        if name in FEWSHOT_MARK:
            assert FEWSHOT_MARK[name] in text
            # The target task comes after the few-shot examples.
            assert text.rindex(VALUES[name]["instruction"]) > text.index(FEWSHOT_MARK[name])


@pytest.mark.parametrize("name", [spec.name for spec in template_specs()])
def test_render_chat_templates(name):
    prompt = TemplateSet().render("chat", template_spec(name), **VALUES[name])
    assert prompt.text is None
    roles = [role for role, _ in prompt.messages]
    assert roles[-1] == "user"
    assert set(roles) <= {"system", "user", "assistant"}
    user = prompt.messages[-1][1]
    assert "${" not in user and user == user.strip()
    if name.startswith("bootstrap"):
        assert VALUES[name]["tasks"] in user
        assert "3 to 4" in user
    else:
        assert TARGET.get(name, "Task: {instruction}").format(**VALUES[name]) in user
        if name in FEWSHOT_MARK:
            assert FEWSHOT_MARK[name] in user


@pytest.mark.parametrize("style", ["completion", "chat"])
def test_check_all_accepts_packaged_templates(style):
    TemplateSet().check_all(style, template_specs())


@pytest.mark.parametrize("name", ["bootstrap", "bootstrap_classification"])
def test_completion_bootstrap_prompt_ends_with_nine(name):
    lines = [f"Task number {i} goes here." for i in range(1, 9)]
    tasks = "\n".join(f"{i}. {line}" for i, line in enumerate(lines, start=1)) + "\n9."
    text = (
        TemplateSet()
        .render("completion", template_spec(name), tasks=tasks, next_number=9, last_number=16)
        .text
    )
    assert text.endswith("\n8. Task number 8 goes here.\n9.")
    assert text.index("1. Task number 1") < text.index("8. Task number 8")
    # A one-line header precedes the list.
    assert text.split("\n")[1] == "1. Task number 1 goes here."


def test_missing_values_raise():
    with pytest.raises(KeyError):
        TemplateSet().render("completion", template_spec("classify"))


def test_user_template_dir_overrides_one_file(tmp_path):
    (tmp_path / "completion").mkdir()
    (tmp_path / "completion" / "classify.txt").write_text(
        "MY HEADER\n${examples}\n\nTask: ${instruction}\nAnswer:", encoding="utf-8"
    )
    user, packaged = TemplateSet(tmp_path), TemplateSet()
    text = user.render("completion", template_spec("classify"), instruction="Is it red?").text
    assert text.startswith("MY HEADER\n")
    assert text.endswith("Task: Is it red?\nAnswer:")
    # The few-shot examples still come from the package.
    assert "Is it classification?" in text
    for name in ("bootstrap", "instances_generation"):
        assert user.render("completion", template_spec(name), **VALUES[name]) == packaged.render(
            "completion", template_spec(name), **VALUES[name]
        )
    assert user.render("chat", template_spec("classify"), **VALUES["classify"]) == packaged.render(
        "chat", template_spec("classify"), **VALUES["classify"]
    )
    assert user.fingerprint("completion", [template_spec("classify")]) != packaged.fingerprint(
        "completion", [template_spec("classify")]
    )
    assert user.fingerprint("completion", [template_spec("bootstrap")]) == packaged.fingerprint(
        "completion", [template_spec("bootstrap")]
    )
    user.check_all("completion", template_specs())


def test_user_fewshot_file_overrides_examples(tmp_path):
    (tmp_path / "fewshot").mkdir()
    (tmp_path / "fewshot" / "classify.txt").write_text(
        "Task: Pick a colour.\nIs it classification? Yes\n", encoding="utf-8"
    )
    text = (
        TemplateSet(tmp_path)
        .render("completion", template_spec("classify"), instruction="Go.")
        .text
    )
    assert "Task: Pick a colour.\nIs it classification? Yes\n\nTask: Go." in text


def _write(tmp_path: Path, relative: str, text: str) -> Path:
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("relative", "text", "message"),
    [
        (
            "completion/classify.txt",
            "Header\n${examples}\nTask: ${instruction} ${bogus}",
            "unknown placeholder ${bogus}",
        ),
        ("completion/classify.txt", "Costs $ 5\n${instruction}", "invalid placeholder"),
        ("completion/instances_generation.txt", "Pay $5 for ${instruction}", "invalid placeholder"),
        (
            "completion/instances_generation.txt",
            "Hi $name, ${instruction}",
            "unknown placeholder ${name}",
        ),
        ("completion/bootstrap.txt", "Header only\n", "missing required placeholder ${tasks}"),
        (
            "chat/classify.txt",
            "[system]\nYou judge.\n\nTask: ${instruction}",
            "must end with a [user] message",
        ),
        ("chat/classify.txt", "Hello\n[user]\n${instruction}", "text before the first"),
        ("chat/classify.txt", "[bot]\nHi\n[user]\n${instruction}", "unknown role [bot]"),
    ],
)
def test_bad_user_template_raises_input_error_naming_the_file(tmp_path, relative, text, message):
    path = _write(tmp_path, relative, text)
    style, name = relative.split("/")[0], Path(relative).stem
    with pytest.raises(InputError) as excinfo:
        TemplateSet(tmp_path).check_all(style, template_specs())
    assert excinfo.value.path == str(path)
    assert message in str(excinfo.value)
    assert str(path) in str(excinfo.value)
    with pytest.raises(InputError):
        TemplateSet(tmp_path).render(style, template_spec(name), **VALUES[name])


def test_bad_placeholder_error_reports_the_line(tmp_path):
    _write(
        tmp_path,
        "completion/classify.txt",
        "Line one\n${examples}\nTask: ${instruction}\nCost: $\n",
    )
    with pytest.raises(InputError) as excinfo:
        TemplateSet(tmp_path).check_all("completion", template_specs())
    assert excinfo.value.line == 4


def test_bad_placeholder_line_skips_escaped_dollars(tmp_path):
    _write(
        tmp_path,
        "completion/classify.txt",
        "Price: $$ 5\n${examples}\nTask: ${instruction}\nBad: $ here\n",
    )
    with pytest.raises(InputError) as excinfo:
        TemplateSet(tmp_path).check_all("completion", template_specs())
    assert excinfo.value.line == 4


def test_missing_template_dir_raises(tmp_path):
    with pytest.raises(InputError, match="template directory not found"):
        TemplateSet(tmp_path / "nope")


def test_packaged_finetune_layouts():
    layouts = TemplateSet().finetune_layouts()
    assert len(layouts["with_input"]) == 7
    assert len(layouts["without_input"]) == 6
    values = {"instruction": "INSTR", "input": "INP", "output": "OUT", "end_of_text": "EOT"}
    for layout in layouts["with_input"]:
        prompt = layout.prompt.substitute(values)
        assert "INSTR" in prompt and "INP" in prompt
        assert "OUT" not in prompt
        assert layout.completion.substitute(values).endswith("OUTEOT")
    for layout in layouts["without_input"]:
        assert "input" not in layout.prompt.get_identifiers()
        prompt = layout.prompt.substitute(values)
        assert "INSTR" in prompt and "OUT" not in prompt
        assert layout.completion.substitute(values).endswith("OUTEOT")
    prompts = {layout.prompt.template for kind in layouts.values() for layout in kind}
    assert len(prompts) == 13


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[[with_input]]\nprompt = "${instruction} ${oops}"\ncompletion = "${output}"\n'
            '[[without_input]]\nprompt = "${instruction}"\ncompletion = "${output}"\n',
            "unknown placeholder ${oops}",
        ),
        (
            '[[with_input]]\nprompt = "${instruction} ${input}"\ncompletion = "${output}"\n'
            '[[without_input]]\nprompt = "${instruction} ${input}"\ncompletion = "${output}"\n',
            "unknown placeholder ${input}",
        ),
        (
            '[[with_input]]\nprompt = "${instruction}"\ncompletion = "${output}"\n',
            "needs at least one [[without_input]] entry",
        ),
        (
            '[[with_input]]\nprompt = "Costs $ 1"\ncompletion = "${output}"\n'
            '[[without_input]]\nprompt = "${instruction}"\ncompletion = "${output}"\n',
            "invalid placeholder",
        ),
        ('[[with_input]]\nprompt = 3\ncompletion = "${output}"\n', "expected a string"),
        ("this is = = not toml", "invalid TOML"),
    ],
)
def test_bad_finetune_toml(tmp_path, toml, message):
    path = _write(tmp_path, "finetune.toml", toml)
    with pytest.raises(InputError) as excinfo:
        TemplateSet(tmp_path).finetune_layouts()
    assert excinfo.value.path == str(path)
    assert message in str(excinfo.value)


# --------------------------------------------------------------------------------------------
# stages/prepare.build
# --------------------------------------------------------------------------------------------


def generation_text(n: int, prefix: str = "item") -> str:
    return "\n".join(
        f"Example {i}\nText: {prefix} {i}\nOutput: result {i}" for i in range(1, n + 1)
    )


def make_config(**prepare) -> Config:
    config = defaults()
    for key, value in prepare.items():
        setattr(config.prepare, key, value)
    return config


def run_build(tasks, seeds=(), config=None, templates=None, style="completion"):
    stats = StageStats("prepare")
    parsed = [parse_task(task, style) for task in tasks]
    data = build(parsed, list(seeds), config or make_config(), templates or TemplateSet(), stats)
    return data, stats


@pytest.fixture
def single_layout_dir(tmp_path):
    _write(
        tmp_path,
        "finetune.toml",
        '[[with_input]]\nprompt = "${instruction}\\n${input}\\n"\n'
        'completion = "${output}${end_of_text}"\n'
        '[[without_input]]\nprompt = "${instruction}\\n"\n'
        'completion = "${output}${end_of_text}"\n',
    )
    return tmp_path


def test_build_parses_and_filters_each_task():
    tasks = [
        GeneratedTask("Summarize.", False, generation_text(2), truncated=False),
        GeneratedTask(
            "Is it odd?",
            True,
            "Class label: Odd\nNumber: 3\nClass label: Even\nNumber: 4",
            truncated=False,
        ),
        GeneratedTask("Nothing here.", False, "no markers at all", truncated=False),
        GeneratedTask("Cut off.", False, generation_text(3), truncated=True),
        GeneratedTask(
            "Bad.",
            False,
            "Example 1\nText: same\nOutput: a\nExample 2\nText: same\nOutput: b",
            truncated=False,
        ),
    ]
    data, stats = run_build(tasks)
    assert data.generated == [
        Example("Summarize.", "Text: item 1", "result 1"),
        Example("Summarize.", "Text: item 2", "result 2"),
        Example("Is it odd?", "Number: 3", "Odd"),
        Example("Is it odd?", "Number: 4", "Even"),
        Example("Cut off.", "Text: item 1", "result 1"),
        Example("Cut off.", "Text: item 2", "result 2"),
    ]
    assert data.training == data.generated
    assert stats.kept == 6
    assert stats.lost["tasks"]["unparseable"] == 1  # tasks, counted apart from instances
    assert "unparseable" not in stats.dropped
    assert stats.dropped["same_input_different_output"] == 2
    assert len(data.encoded) == 6
    for record in data.encoded:
        assert record.completion.endswith(EOT)


def test_build_caps_instances_per_task_with_reproducible_sampling():
    task = GeneratedTask("Echo.", False, generation_text(8), truncated=False)
    all_inputs = {f"Text: item {i}" for i in range(1, 9)}

    def sample(seed: int) -> list[Example]:
        config = make_config()
        config.random_seed = seed
        data, stats = run_build([task], config=config)
        assert stats.dropped["over_task_cap"] == 3
        assert len(data.generated) == 5
        assert len({e.input for e in data.generated}) == 5
        assert {e.input for e in data.generated} <= all_inputs
        return data.generated

    assert sample(42) == sample(42)
    assert len({tuple(sample(seed)) for seed in range(8)}) > 1


def test_build_is_reproducible_end_to_end():
    tasks = [
        GeneratedTask(f"Task {k}.", False, generation_text(7, f"t{k}"), truncated=False)
        for k in range(4)
    ]
    first, _ = run_build(tasks)
    second, _ = run_build(tasks)
    assert first.generated == second.generated
    assert first.encoded == second.encoded
    other_config = make_config()
    other_config.random_seed = 7
    third, _ = run_build(tasks, config=other_config)
    assert third.encoded != first.encoded


def test_build_cap_setting_is_respected():
    task = GeneratedTask("Echo.", False, generation_text(4), truncated=False)
    data, stats = run_build([task], config=make_config(max_instances_per_task=2))
    assert len(data.generated) == 2
    assert stats.dropped["over_task_cap"] == 2
    data, stats = run_build([task], config=make_config(max_instances_per_task=4))
    assert len(data.generated) == 4
    assert stats.dropped["over_task_cap"] == 0


def test_build_include_seed_tasks():
    seeds = [
        SeedTask("s1", "one", "Seed instruction one.", (Instance("", "seed out"),)),
        SeedTask(
            "s2",
            "two",
            "Seed instruction two.",
            (Instance("In A", "Out A"), Instance("In B", "Out B")),
            True,
        ),
    ]
    tasks = [GeneratedTask("Generated.", False, generation_text(1), truncated=False)]
    data, stats = run_build(tasks, seeds, config=make_config(include_seed_tasks=True))
    assert data.generated == [Example("Generated.", "Text: item 1", "result 1")]
    assert data.training == [
        Example("Generated.", "Text: item 1", "result 1"),
        Example("Seed instruction one.", "", "seed out"),
        Example("Seed instruction two.", "In A", "Out A"),
        Example("Seed instruction two.", "In B", "Out B"),
    ]
    assert stats.kept == 1
    assert len(data.encoded) == 4
    assert any("Seed instruction two." in r.prompt for r in data.encoded)

    data, _ = run_build(tasks, seeds, config=make_config(include_seed_tasks=False))
    assert data.training == data.generated
    assert len(data.encoded) == 1


def test_build_classification_tasks_only():
    tasks = [
        GeneratedTask("Generate.", False, generation_text(2), truncated=False),
        GeneratedTask(
            "Classify.", True, "Class label: A\nX: 1\nClass label: B\nX: 2", truncated=False
        ),
        GeneratedTask("Generate more.", False, generation_text(1), truncated=False),
    ]
    data, stats = run_build(tasks, config=make_config(classification_tasks_only=True))
    assert [e.instruction for e in data.generated] == ["Classify.", "Classify."]
    assert stats.lost["tasks"]["not_classification"] == 2
    assert stats.kept == 2


def test_build_drops_duplicate_prompt_completion(single_layout_dir):
    tasks = [
        GeneratedTask("Same task.", False, "Example 1\nText: x\nOutput: y", truncated=False),
        GeneratedTask("Same task.", False, "Example 1\nText: x\nOutput: y", truncated=False),
        GeneratedTask("Other task.", False, "Output: z", truncated=False),
    ]
    config = make_config(field_removal_probability=0.0)
    data, stats = run_build(tasks, config=config, templates=TemplateSet(single_layout_dir))
    assert len(data.generated) == 3
    assert stats.lost["examples"]["duplicate_prompt_completion"] == 1
    assert sorted(data.encoded, key=lambda r: r.prompt) == [
        PromptCompletion("Other task.\n", "z" + EOT),
        PromptCompletion("Same task.\nText: x\n", "y" + EOT),
    ]


def test_build_augments_inputs_only_in_encoded_data(single_layout_dir):
    tasks = [
        GeneratedTask("Rewrite.", False, "Example 1\nSentence: a\n\nb\nOutput: c", truncated=False)
    ]
    config = make_config(field_removal_probability=1.0, end_of_text="</s>")
    data, _ = run_build(tasks, config=config, templates=TemplateSet(single_layout_dir))
    assert data.generated == [Example("Rewrite.", "Sentence: a\n\nb", "c")]
    assert data.encoded == [PromptCompletion("Rewrite.\na\nb\n", "c</s>")]


def test_build_chat_style_strips_markdown():
    tasks = [
        GeneratedTask(
            "Greet.", False, "**Example 1**\nName: Ann\n**Output:** Hi Ann", truncated=False
        )
    ]
    data, _ = run_build(tasks, style="chat")
    assert data.generated == [Example("Greet.", "Name: Ann", "Hi Ann")]


def test_build_with_no_tasks():
    data, stats = run_build([])
    assert data.generated == [] and data.training == [] and data.encoded == []
    assert stats.kept == 0


# --------------------------------------------------------------------------------------------
# io/atomic.json_line
# --------------------------------------------------------------------------------------------


NASTY = [
    "line\u2028separator",
    "para\u2029separator",
    "next\x85line",
    "ctrl \x00\x01\x0b\x0c\x1c\x1d\x1e\x1f\x7f end",
    "cr\r\nlf\n",
    "lone \ud800 surrogate",
    "low \udfff alone and \u2028 too",
    '{"prompt": "x", "completion": "y"}\n{"a": 1}',
    "Output: <|endoftext|> Example 1\nClass label: yes",
    'quote " backslash \\ tab \t',
    "emoji 🙂 and CJK 中文 and İ",
    "",
]


@pytest.mark.parametrize("text", NASTY)
def test_json_line_is_one_parseable_line(text):
    record = {"instruction": text, "input": text, "output": "ok"}
    line = json_line(record)
    assert len(line.splitlines()) == 1
    assert "\n" not in line and "\r" not in line
    line.encode("utf-8")
    assert json.loads(line) == record


def test_json_line_keeps_plain_unicode_readable():
    line = json_line({"text": "café 中文 🙂"})
    assert "café 中文 🙂" in line
    assert json_line({"t": "a\u2028b"}) == '{"t": "a\\u2028b"}'
    assert json_line({"t": "a\x85b"}) == '{"t": "a\\u0085b"}'


def test_write_jsonl_round_trips(tmp_path):
    records = [{"prompt": text, "completion": text + EOT} for text in NASTY]
    path = tmp_path / "sub" / "data.jsonl"
    write_jsonl(path, records)
    raw = path.read_bytes().decode("utf-8")
    lines = raw.split("\n")
    assert lines[-1] == ""
    assert [json.loads(line) for line in lines[:-1]] == records
    assert len(raw.splitlines()) == len(records)
