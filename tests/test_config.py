"""The TOML settings file: what it accepts, and how bad files are reported (file, line, field)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import expect_input_error, write_file

from selfinstruct.cli import main
from selfinstruct.errors import InputError
from selfinstruct.llm.choice import ModelChoice
from selfinstruct.llm.registry import BUILT_IN, known_backends
from selfinstruct.run.layers import defaults, load_config
from selfinstruct.stages.bootstrap.settings import BLOCKED_KEYWORDS

ANY = object()

FULL = """\
# every setting, none at its default
seeds = "my_seeds.txt"
num_instructions = 250
backend = "fake"
model = "tiny-model"
prompt_style = "chat"
random_seed = 7
templates = "my_templates"

[bootstrap]
num_prompt_instructions = 6
num_machine_instructions = 3
request_batch_size = 4
classification_only = true
temperature = 0.9
top_p = 0.95
presence_penalty = 1.0
frequency_penalty = 0.5
max_tokens = 512
stop = ["\\n\\n", "END"]
truncated_responses = "keep_complete_items"
min_words = 2
max_words = 80
blocked_keywords = ["image", "video"]
blocked_prefixes = []
rouge_threshold = 0.6
tokenizer = "unicode"
most_similar = 5
max_requests = 12
batches_in_flight = 3
similarity_workers = 1

[classify]
request_batch_size = 8
temperature = 0.1
top_p = 0.2
presence_penalty = 0.3
frequency_penalty = 0.4
max_tokens = 4
stop = ["\\n"]

[instances]
request_batch_size = 3
max_instances = 7
temperature = 0.2
top_p = 0.3
presence_penalty = 1.0
frequency_penalty = 0.1
max_tokens = 400
max_tokens_with_classification = 250
stop = ["Task:"]

[prepare]
max_instances_per_task = 3
include_seed_tasks = true
classification_tasks_only = true
field_removal_probability = 0.25
end_of_text = "</s>"
provenance = true
license = "cc-by-4.0"
language = "de"
dataset_name = "My dataset"
report = false
report_verbs = false
min_rating = "A"
require_yes = ["output"]
keep_unjudged = true
drop_human_rejected = false
judge_min_kappa = 0.4
decontaminate = false
decontaminate_files = ["evals/tasks.jsonl"]
decontaminate_rouge = 0.8
decontaminate_ngram = 8

[relabel]
enabled = true
request_batch_size = 4
temperature = 0.5
top_p = 0.5
presence_penalty = 0.5
frequency_penalty = 0.5
max_tokens = 8
stop = ["."]

[judge]
backend = "openai"
model = "judge-model"
prompt_style = "chat"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "JUDGE_KEY"
concurrency = 8
input_per_million = 2.5
output_per_million = 10.0
request_batch_size = 7
temperature = 0.3
top_p = 0.9
presence_penalty = 0.1
frequency_penalty = 0.1
max_tokens = 150
stop = ["\\n\\n"]

[embedded]
model_path = "/models/tiny.gguf"
n_ctx = 2048
n_threads = 4
n_batch = 256
chat_format = "chatml"

[openai]
base_url = "http://127.0.0.1:8000/v1"
api_key_env = "MY_KEY"
max_concurrency = 64
auto_concurrency_start = 2
auto_concurrency_max = 128
timeout = 30.0
max_attempts = 3
backoff_base = 0.5
backoff_max = 10.0
requests_per_minute = 600.0
tokens_per_minute = 100000.0

[pricing]
input_per_million = 0.5
output_per_million = 1.5
"""


def write(tmp_path: Path, text: str | bytes, name: str = "settings.toml") -> Path:
    return write_file(tmp_path, name, text)


def expect_error(path: Path, **expected: Any) -> InputError:
    return expect_input_error(load_config, path, **expected)


# ---------------------------------------------------------------------------------------------
# Valid files


def test_full_valid_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    assert (config.seeds, config.num_instructions, config.backend, config.model) == (
        "my_seeds.txt",
        250,
        "fake",
        "tiny-model",
    )
    assert (config.prompt_style, config.random_seed, config.templates) == (
        "chat",
        7,
        "my_templates",
    )
    b = config.bootstrap
    assert (b.num_prompt_instructions, b.num_machine_instructions, b.request_batch_size) == (
        6,
        3,
        4,
    )
    assert b.classification_only is True
    assert (b.temperature, b.top_p, b.presence_penalty, b.frequency_penalty) == (
        0.9,
        0.95,
        1.0,
        0.5,
    )
    assert (b.max_tokens, b.stop, b.min_words, b.max_words) == (512, ["\n\n", "END"], 2, 80)
    assert (b.blocked_keywords, b.blocked_prefixes) == (["image", "video"], [])
    openai = ModelChoice.of("openai", "m", {})
    assert (b.batches_in_flight, b.schedule(openai), b.similarity_workers) == (3, 3, 1)
    assert (b.rouge_threshold, b.tokenizer, b.most_similar, b.max_requests) == (
        0.6,
        "unicode",
        5,
        12,
    )
    assert b.truncated_responses == "keep_complete_items"
    c = config.classify
    assert (
        c.request_batch_size,
        c.temperature,
        c.top_p,
        c.presence_penalty,
        c.frequency_penalty,
        c.max_tokens,
        c.stop,
    ) == (8, 0.1, 0.2, 0.3, 0.4, 4, ["\n"])
    i = config.instances
    assert (
        i.request_batch_size,
        i.max_instances,
        i.temperature,
        i.top_p,
        i.presence_penalty,
        i.frequency_penalty,
        i.max_tokens,
        i.max_tokens_with_classification,
        i.stop,
    ) == (3, 7, 0.2, 0.3, 1.0, 0.1, 400, 250, ["Task:"])
    p = config.prepare
    assert (
        p.max_instances_per_task,
        p.include_seed_tasks,
        p.classification_tasks_only,
        p.field_removal_probability,
        p.end_of_text,
    ) == (3, True, True, 0.25, "</s>")
    assert (p.report, p.report_verbs) == (False, False)
    assert (p.min_rating, p.require_yes, p.decontaminate) == ("A", ["output"], False)
    assert p.decontaminate_files == ["evals/tasks.jsonl"]  # made absolute by layering
    assert (p.decontaminate_rouge, p.decontaminate_ngram) == (0.8, 8)
    assert (config.relabel.enabled, config.relabel.max_tokens) == (True, 8)
    j = config.judge
    assert (j.backend, j.model, j.prompt_style, j.base_url, j.api_key_env) == (
        "openai",
        "judge-model",
        "chat",
        "http://127.0.0.1:9/v1",
        "JUDGE_KEY",
    )
    assert (j.concurrency, j.input_per_million, j.output_per_million) == (8, 2.5, 10.0)
    e = config.embedded
    assert (e.model_path, e.n_ctx, e.n_threads, e.n_batch, e.chat_format) == (
        "/models/tiny.gguf",
        2048,
        4,
        256,
        "chatml",
    )


def test_full_config_sets_every_setting(tmp_path: Path) -> None:
    """FULL changes every setting from its default (so the test above covers all keys)."""
    config = load_config(write(tmp_path, FULL)).to_dict()
    default = defaults().to_dict()
    plugins = set(known_backends()) - set(BUILT_IN)  # installed plug-ins' sections
    for key, value in default.items():
        if key in plugins:
            continue
        if isinstance(value, dict):
            for name, setting in value.items():
                assert config[key][name] != setting, f"{key}.{name} left at its default"
        else:
            assert config[key] != value, f"{key} left at its default"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", b"\xef\xbb\xbf"])
def test_empty_config_gives_paper_defaults(tmp_path: Path, text: str | bytes) -> None:
    config = load_config(write(tmp_path, text))
    assert config == defaults()
    b, c, i = config.bootstrap, config.classify, config.instances
    assert (b.temperature, b.top_p, b.presence_penalty, b.frequency_penalty) == (0.7, 0.5, 2.0, 0.0)
    assert b.max_tokens == 1024
    assert b.rouge_threshold == 0.7
    assert (b.num_prompt_instructions, b.num_machine_instructions, b.request_batch_size) == (
        8,
        2,
        5,
    )
    assert b.blocked_keywords == BLOCKED_KEYWORDS
    assert config.num_instructions == 100
    assert config.prompt_style == "completion"
    assert config.random_seed == 42
    assert (c.temperature, c.max_tokens) == (0.0, 3)
    assert i.presence_penalty == 1.5
    assert (i.max_tokens, i.max_tokens_with_classification) == (350, 300)
    assert i.max_instances == 5
    assert config.prepare.max_instances_per_task == 5


def test_integer_accepted_for_float(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[bootstrap]\ntemperature = 1\nrouge_threshold = 0\n"))
    assert config.bootstrap.temperature == 1.0
    assert isinstance(config.bootstrap.temperature, float)
    assert config.bootstrap.rouge_threshold == 0.0


def test_config_as_inline_tables_and_dotted_keys(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "classify = { max_tokens = 5 }\ninstances.max_instances = 3\n")
    )
    assert config.classify.max_tokens == 5
    assert config.instances.max_instances == 3


# ---------------------------------------------------------------------------------------------
# Unknown keys


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, 'backend = "fake"\n\nnum_instruction = 5\n')
    err = expect_error(path, line=3, field="num_instruction", detail="unknown setting")
    assert "num_instructions" in err.detail  # lists the known keys


def test_unknown_key_in_bootstrap(tmp_path: Path) -> None:
    path = write(tmp_path, 'backend = "fake"\n\n[bootstrap]\ntemperature = 0.5\ntemprature = 0.9\n')
    err = expect_error(path, line=5, field="bootstrap.temprature", detail="unknown setting")
    assert "temperature" in err.detail


def test_key_of_another_section(tmp_path: Path) -> None:
    # min_words is a bootstrap setting; classify has none, even if bootstrap is set too.
    path = write(tmp_path, "[bootstrap]\nmin_words = 3\n\n[classify]\nmin_words = 3\n")
    expect_error(path, line=5, field="classify.min_words", detail="unknown setting")


def test_section_setting_at_top_level(tmp_path: Path) -> None:
    path = write(tmp_path, 'model = "x"\ntemperature = 0.5\n')
    expect_error(path, line=2, field="temperature", detail="unknown setting")


def test_unknown_section(tmp_path: Path) -> None:
    path = write(tmp_path, 'model = "x"\n\n[generation]\ntemperature = 0.5\n')
    expect_error(path, line=3, field="generation", detail="unknown setting")


@pytest.mark.parametrize("header", ["[bootstrap]", "[ bootstrap ]", "  [bootstrap]"])
def test_unknown_key_line_with_header_spacing(tmp_path: Path, header: str) -> None:
    path = write(tmp_path, f"{header}\ntemperature = 0.5\n  bogus = 1\n")
    expect_error(path, line=3, field="bootstrap.bogus")


@pytest.mark.parametrize("header", ["[bootstrap]  # stage 1", '["bootstrap"]'])
def test_unknown_key_after_commented_or_quoted_header(tmp_path: Path, header: str) -> None:
    path = write(tmp_path, f"{header}\ntemperature = 0.5\nbogus = 1\n")
    expect_error(path, line=3, field="bootstrap.bogus")


def test_unknown_dotted_key_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'model = "x"\nbootstrap.bogus = 1\n')
    expect_error(path, line=2, field="bootstrap.bogus")


def test_line_numbers_after_unicode_line_separator_in_string(tmp_path: Path) -> None:
    path = write(tmp_path, 'model = "a\u2028b"\nbogus = 1\n')
    expect_error(path, line=2, field="bogus")


# ---------------------------------------------------------------------------------------------
# Wrong types


@pytest.mark.parametrize(
    ("text", "line", "field", "detail"),
    [
        ('model = "x"\nnum_instructions = "100"\n', 2, "num_instructions", "integer"),
        ("num_instructions = true\n", 1, "num_instructions", "integer"),
        ("random_seed = 4.2\n", 1, "random_seed", "integer"),
        ("[bootstrap]\nmax_tokens = false\n", 2, "bootstrap.max_tokens", "integer"),
        ("[instances]\n\nmax_instances = '5'\n", 3, "instances.max_instances", "integer"),
        ("[classify]\nstop = [1, 2]\n", 2, "classify.stop", "list of strings"),
        ('[bootstrap]\nstop = "\\n\\n"\n', 2, "bootstrap.stop", "list of strings"),
        (
            '[bootstrap]\nblocked_keywords = ["image", 3]\n',
            2,
            "bootstrap.blocked_keywords",
            "list of strings",
        ),
        ('[bootstrap]\ntemperature = "warm"\n', 2, "bootstrap.temperature", "number"),
        ("[bootstrap]\ntop_p = true\n", 2, "bootstrap.top_p", "number"),
        (
            '[bootstrap]\nclassification_only = "yes"\n',
            2,
            "bootstrap.classification_only",
            "true or false",
        ),
        ("[prepare]\ninclude_seed_tasks = 1\n", 2, "prepare.include_seed_tasks", "true or false"),
        ("prompt_style = 1\n", 1, "prompt_style", "string"),
        ("model = 2024-01-01\n", 1, "model", "string"),
        ("backend = []\n", 1, "backend", "string"),
        ("bootstrap = 5\n", 1, "bootstrap", "section"),
        ("[[bootstrap]]\ntemperature = 1.0\n", 1, "bootstrap", "section"),
    ],
)
def test_wrong_type(tmp_path: Path, text: str, line: int, field: str, detail: str) -> None:
    expect_error(write(tmp_path, text), line=line, field=field, detail=detail)


def test_wrong_type_message_shows_value(tmp_path: Path) -> None:
    err = expect_error(write(tmp_path, '[bootstrap]\nmax_tokens = "lots"\n'), line=2)
    assert "'lots'" in err.detail


# ---------------------------------------------------------------------------------------------
# Invalid TOML


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('model = "x"\nbackend = "fake"\nprompt_style = \n', 3),
        ("[bootstrap\ntemperature = 1\n", 1),
        ('model = "x"\n\n[bootstrap]\ntemperature = 0.5\ntemperature = 0.6\n', 5),
        ('model = "unterminated\nbackend = "fake"\n', 1),
        ('model = "x"\nnum_instructions = 1 2\n', 2),
        ("[bootstrap]\n[bootstrap]\n", 2),
        ('model = "x"\nthis is not toml\n', 2),
    ],
)
def test_invalid_toml_names_line(tmp_path: Path, text: str, line: int) -> None:
    expect_error(write(tmp_path, text), line=line, field=None, detail="invalid TOML")


def test_huge_integer(tmp_path: Path) -> None:
    expect_error(write(tmp_path, 'model = "x"\nnum_instructions = ' + "9" * 5000 + "\n"), line=2)


def test_deeply_nested_array(tmp_path: Path) -> None:
    expect_error(write(tmp_path, "[bootstrap]\nstop = " + "[" * 3000 + "]" * 3000 + "\n"), line=2)


# ---------------------------------------------------------------------------------------------
# Out-of-range values


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ('backend = "fake"\nprompt_style = "foo"\n', 2, "prompt_style"),
        ('prompt_style = "Chat"\n', 1, "prompt_style"),
        ("[bootstrap]\nrouge_threshold = 2\n", 2, "bootstrap.rouge_threshold"),
        ("[bootstrap]\nrouge_threshold = -0.1\n", 2, "bootstrap.rouge_threshold"),
        ("[bootstrap]\nrouge_threshold = nan\n", 2, "bootstrap.rouge_threshold"),
        (
            "[bootstrap]\nnum_prompt_instructions = 4\nnum_machine_instructions = 6\n",
            3,
            "bootstrap.num_machine_instructions",
        ),
        ("[bootstrap]\nnum_machine_instructions = 9\n", 2, "bootstrap.num_machine_instructions"),
        ("[bootstrap]\nnum_machine_instructions = -1\n", 2, "bootstrap.num_machine_instructions"),
        ("[bootstrap]\nnum_prompt_instructions = 0\n", 2, "bootstrap.num_prompt_instructions"),
        ("[bootstrap]\nnum_prompt_instructions = 65\n", 2, "bootstrap.num_prompt_instructions"),
        ('[bootstrap]\ntokenizer = "bert"\n', 2, "bootstrap.tokenizer"),
        ("num_instructions = -1\n", 1, "num_instructions"),
        ("[classify]\nrequest_batch_size = 0\n", 2, "classify.request_batch_size"),
        ("[instances]\nmax_tokens = 0\n", 2, "instances.max_tokens"),
        ("[instances]\nmax_instances = 0\n", 2, "instances.max_instances"),
        ("[instances]\nmax_instances = 21\n", 2, "instances.max_instances"),
        ("[prepare]\nfield_removal_probability = 1.5\n", 2, "prepare.field_removal_probability"),
    ],
)
def test_out_of_range(tmp_path: Path, text: str, line: int, field: str) -> None:
    expect_error(write(tmp_path, text), line=line, field=field)


def test_prompt_style_error_lists_choices(tmp_path: Path) -> None:
    err = expect_error(write(tmp_path, 'prompt_style = "foo"\n'))
    assert "completion" in err.detail and "chat" in err.detail


def test_num_machine_above_default_num_prompt_has_no_line_of_its_own(tmp_path: Path) -> None:
    # num_machine_instructions (default 2) is not in the file: the field is still named.
    expect_error(
        write(tmp_path, "[bootstrap]\nnum_prompt_instructions = 1\n"),
        field="bootstrap.num_machine_instructions",
    )


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (8, 8)])
def test_range_limits_inclusive(tmp_path: Path, value: int, expected: int) -> None:
    path = write(
        tmp_path, f"[bootstrap]\nnum_machine_instructions = {value}\nrouge_threshold = 1.0\n"
    )
    config = load_config(path)
    assert config.bootstrap.num_machine_instructions == expected
    assert config.bootstrap.rouge_threshold == 1.0


# ---------------------------------------------------------------------------------------------
# Unreadable files


def test_missing_config_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.toml", line=None, detail="not found")


def test_config_path_is_directory(tmp_path: Path) -> None:
    expect_error(tmp_path, line=None, detail="directory")


def test_config_invalid_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, b'model = "x"\n\n[bootstrap]\ntemperature = 0.5 # \xff\xfe\n')
    expect_error(path, line=4, detail="UTF-8")


def test_config_binary(tmp_path: Path) -> None:
    path = write(tmp_path, b'model = "x"\n\x00\x00\x00')
    expect_error(path, line=2, detail="NUL")


# ---------------------------------------------------------------------------------------------
# Flags override the file (through the real command)


def test_flags_override_config_file(tmp_path: Path) -> None:
    (tmp_path / "seeds.txt").write_text(
        "Write a haiku about rain.\nName three colors.\nSummarize a news article.\n",
        encoding="utf-8",
    )
    config_file = write(
        tmp_path,
        (
            'seeds = "seeds.txt"\n'
            "num_instructions = 9\n"
            'backend = "embedded"\n'
            "random_seed = 1\n"
            'prompt_style = "chat"\n'
            "[bootstrap]\n"
            "temperature = 0.9\n"
            "classification_only = true\n"
            'tokenizer = "unicode"\n'
            "[prepare]\n"
            "max_instances_per_task = 2\n"
            "include_seed_tasks = true\n"
        ),
    )
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--config",
            str(config_file),
            "--out",
            str(out),
            "--quiet",
            "--backend",
            "fake",
            "--num-instructions",
            "4",
            "--random-seed",
            "5",
            "--prompt-style",
            "completion",
            "--no-classification-only",
            "--max-instances-per-task",
            "3",
            "--no-include-seed-tasks",
        ],
    )
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    config = run["config"]
    # From the flags:
    assert config["backend"] == "fake"
    assert config["num_instructions"] == 4
    assert config["random_seed"] == 5
    assert config["prompt_style"] == "completion"
    assert config["bootstrap"]["classification_only"] is False
    assert config["prepare"]["max_instances_per_task"] == 3
    assert config["prepare"]["include_seed_tasks"] is False
    # From the file (no flag given):
    assert config["bootstrap"]["temperature"] == 0.9
    assert config["bootstrap"]["tokenizer"] == "unicode"
    assert Path(config["seeds"]) == (tmp_path / "seeds.txt").resolve()  # relative to the file
    assert run["seeds"]["count"] == 3
    # Defaults (neither file nor flag):
    assert config["bootstrap"]["top_p"] == 0.5
    assert config["instances"]["max_tokens"] == 350
    assert run["counts"]["instructions"] == 4


def test_bad_config_value_is_not_rescued_by_flag(tmp_path: Path) -> None:
    """The file is checked as a whole: a flag for the same key does not hide its error."""
    config_file = write(tmp_path, 'backend = "fake"\nrandom_seed = "seven"\n')
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        ["run", "--config", str(config_file), "--out", str(out), "--random-seed", "7", "--quiet"],
    )
    assert result.exit_code == 2
    assert f"{config_file}, line 2, field 'random_seed'" in result.stderr
    assert not out.exists()
