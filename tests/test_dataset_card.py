"""The dataset card, exports/README.md: a Hugging Face card whose YAML header the Hub (and
`datasets`) can read, and whose numbers are the run's own, recomputed here from its files."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import assert_same_nonempty, cli, read_jsonl, store_snapshot

from selfinstruct.analysis.table1 import Table1
from selfinstruct.card.document import CardData, render, size_category
from selfinstruct.testing.openai_server import MockOpenAIServer

HUB_KEYS = [
    "license",
    "language",
    "task_categories",
    "tags",
    "size_categories",
    "pretty_name",
    "configs",
]
EXPORT_FILES = ["alpaca.json", "openai_chat.jsonl", "prompt_completion.jsonl"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("card") / "my-run"
    cli("run", "--out", path, "--backend", "fake", "--num-instructions", "12", "-q")
    return path


def card_parts(directory: Path) -> tuple[dict[str, Any], str]:
    """The card's YAML header (parsed) and its body."""
    text = (directory / "README.md").read_text(encoding="utf-8")
    match = re.fullmatch(r"---\n(.*?\n)---\n(.*)", text, re.DOTALL)
    assert match, text[:200]
    return yaml.safe_load(match.group(1)), match.group(2)


def table_rows(body: str) -> dict[str, str]:
    """The Table 1 rows of the card: label -> this dataset's value."""
    rows = re.findall(r"^\| ([^|]+?) \| ([\d.,]+) \| [^|]+ \|$", body, re.MULTILINE)
    return {label: value.replace(",", "") for label, value in rows}


def mean_words(texts: list[str]) -> float:
    counts = [len(text.split()) for text in texts]
    return sum(counts) / len(counts) if counts else 0.0


def test_header_is_yaml_with_the_hub_fields(run: Path) -> None:
    header, _ = card_parts(run / "exports")
    records = json.loads((run / "exports" / "alpaca.json").read_text(encoding="utf-8"))
    assert list(header) == HUB_KEYS
    assert header["license"] == "unknown"
    assert header["language"] == ["en"]
    assert header["task_categories"] == ["text-generation"]
    assert header["tags"] == ["self-instruct", "synthetic", "instruction-tuning"]
    assert header["size_categories"] == [size_category(len(records))] == ["n<1K"]
    assert header["pretty_name"] == "my-run"
    configs = header["configs"]
    assert [c["config_name"] for c in configs] == ["alpaca", "openai_chat", "prompt_completion"]
    assert [c.get("default", False) for c in configs] == [True, False, False]
    for config, name in zip(configs, EXPORT_FILES, strict=True):
        assert config["data_files"] == [{"split": "train", "path": name}]
        assert (run / "exports" / name).is_file()


def test_datasets_loads_each_config_the_card_names(run: Path, tmp_path: Path) -> None:
    import datasets  # the hub extra, in the test extra

    exports = str(run / "exports")
    records = json.loads((run / "exports" / "alpaca.json").read_text(encoding="utf-8"))
    default = datasets.load_dataset(exports, split="train", cache_dir=str(tmp_path))
    assert default.to_list() == records
    chat = datasets.load_dataset(exports, "openai_chat", split="train", cache_dir=str(tmp_path))
    assert chat.to_list() == read_jsonl(run / "exports" / "openai_chat.jsonl")


def test_table1_equals_the_numbers_of_the_run_files(run: Path) -> None:
    _, body = card_parts(run / "exports")
    rows = table_rows(body)
    generated = read_jsonl(run / "machine_generated_instructions.jsonl")
    instructions = [r["instruction"] for r in generated]
    (labels_file,) = run.glob("is_clf_or_not_*.jsonl")
    answers = {r["instruction"]: r["is_classification"] for r in read_jsonl(labels_file)}
    clf = [answers[i].strip() in ("Yes", "yes", "YES") for i in instructions if i in answers]
    instances = read_jsonl(run / "finetuning_data" / "all_generated_instances.jsonl")
    inputs = [x["input"] for x in instances if x["input"].strip()]
    assert len(instances) > 0 and 0 < sum(clf) < len(clf)
    assert int(rows["instructions"]) == len(instructions)
    assert int(rows["classification instructions"]) == sum(clf)
    assert int(rows["non-classification instructions"]) == len(clf) - sum(clf)
    assert "instructions not labelled yet" not in rows
    assert int(rows["instances"]) == len(instances)
    assert int(rows["instances with an empty input"]) == len(instances) - len(inputs)
    words = {
        "average instruction length (words)": mean_words(instructions),
        "average non-empty input length (words)": mean_words(inputs),
        "average output length (words)": mean_words([x["output"] for x in instances]),
    }
    for label, value in words.items():
        assert float(rows[label]) == pytest.approx(value, abs=0.005), label


def test_body_says_how_the_data_was_made(run: Path) -> None:
    _, body = card_parts(run / "exports")
    config = json.loads((run / "run.json").read_text(encoding="utf-8"))
    funnel = config["funnel"]
    assert "- backend: `fake`" in body and "- model: `fake-1`" in body
    assert f"`{config['seeds']['sha256']}`" in body
    assert "num_instructions = 12" in body and "rouge_threshold = 0.7" in body
    for reason, count in funnel["prepared"]["instances_dropped"].items():
        assert f"| prepare | instances | `{reason}` | {count} |" in body
    for reason, count in funnel["candidates_dropped"].items():
        assert f"| bootstrap | candidate instructions | `{reason}` | {count} |" in body
    assert "54%" in body and "arXiv:2212.10560" not in body  # the BibTeX names it as eprint
    assert 'eprint = "2212.10560"' in body and "2023.acl-long.754" in body
    assert 'data_files="alpaca.json"' in body
    assert "huggingface-cli upload USER/NAME . --repo-type dataset" in body
    assert "embedded default model" not in body  # the fake backend made it


def test_card_settings_change_the_card_and_nothing_generated(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cli("run", "--out", out, "--backend", "fake", "--num-instructions", "8", "-q")
    before = store_snapshot(out)
    data = {name: (out / "exports" / name).read_bytes() for name in EXPORT_FILES}
    name = 'Demo: "quoted" # not a comment\n--- [x] {y} & *z'
    rerun = cli(
        "run",
        "--out",
        out,
        "--set",
        "prepare.license=cc-by-4.0",
        "--set",
        "prepare.language=fr",
        "--set",
        f"prepare.dataset_name={json.dumps(name.replace(chr(10), ' '))}",
    )
    # nothing generated (no request sent, none taken from the cache): the run says so
    assert re.search(r"^\[run\] already complete: 8 instructions", rerun.stderr, re.MULTILINE)
    assert_same_nonempty(store_snapshot(out), before)
    assert {n: (out / "exports" / n).read_bytes() for n in EXPORT_FILES} == data
    header, body = card_parts(out / "exports")
    assert header["license"] == "cc-by-4.0"
    assert header["language"] == ["fr"]
    assert header["pretty_name"] == name.replace("\n", " ")
    assert "prepare.license" in body


@pytest.mark.parametrize(
    ("setting", "value"),
    [("license", '"cc by 4.0"'), ("language", '""'), ("dataset_name", '"two\\nlines"')],
)
def test_a_card_setting_the_header_cannot_hold_is_refused(
    tmp_path: Path, setting: str, value: str
) -> None:
    out = tmp_path / "run"
    args = ("run", "--out", out, "--backend", "fake", "--num-instructions", "2")
    refused = cli(*args, "--set", f"prepare.{setting}={value}", check=False)
    assert refused.returncode == 2
    assert f"prepare.{setting}" in refused.stderr
    assert not out.exists()


@pytest.mark.slow  # a local HTTP server
def test_no_secret_reaches_the_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-test-" + secrets.token_hex(12)
    monkeypatch.setenv("SELFINSTRUCT_CARD_KEY", key)
    out = tmp_path / "run"
    with MockOpenAIServer(api_key=key) as server:
        base_url = server.base_url
        cli(
            "run",
            "--out",
            out,
            "--backend",
            "openai",
            "--base-url",
            base_url,
            "--model",
            "m1",
            "--api-key-env",
            "SELFINSTRUCT_CARD_KEY",
            "--num-instructions",
            "5",
            "-q",
        )
    text = (out / "exports" / "README.md").read_text(encoding="utf-8")
    header, body = card_parts(out / "exports")
    assert header["license"] == "unknown"
    assert key not in text and "sk-" not in text
    assert base_url not in text and "127.0.0.1" not in text  # no server address at all
    assert "- backend: `openai`" in body and "- model: `m1`" in body


def test_imported_paper_files_get_a_card_with_what_they_tell(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "imported"
    (labels,) = run.glob("is_clf_or_not_*.jsonl")
    cli(
        "prepare",
        "--out",
        out,
        "--import-instances",
        run / "machine_generated_instances.jsonl",
        "--import-labels",
        labels,
        "--set",
        "prepare.license=apache-2.0",
        "-q",
    )
    header, body = card_parts(out / "exports")
    assert header["license"] == "apache-2.0" and header["pretty_name"] == "imported"
    assert all((out / "exports" / c["data_files"][0]["path"]).is_file() for c in header["configs"])
    assert "`machine_generated_instances.jsonl`" in body and f"`{labels.name}`" in body
    rows = table_rows(body)
    instances = read_jsonl(out / "finetuning_data" / "all_generated_instances.jsonl")
    assert int(rows["instances"]) == len(instances)
    assert int(rows["instructions"]) == len(read_jsonl(run / "machine_generated_instances.jsonl"))


def card(**changes: Any) -> CardData:
    table = Table1(3, 1, 2, 0, 4, 1, 5.0, 2.5, 3.25)
    fields: dict[str, Any] = {
        "pretty_name": "demo",
        "license": "unknown",
        "language": "en",
        "records": 4,
        "data_files": EXPORT_FILES,
        "made_with": [("model", "`m`")],
        "table1": table,
        **changes,
    }
    return CardData(**fields)


@pytest.mark.parametrize(
    ("records", "category"),
    [
        (0, "n<1K"),
        (999, "n<1K"),
        (1_000, "1K<n<10K"),
        (52_445, "10K<n<100K"),
        (999_999, "100K<n<1M"),
        (10**7, "10M<n<100M"),
        (10**12, "n>1T"),
    ],
)
def test_size_category_is_the_hubs_bucket(records: int, category: str) -> None:
    assert size_category(records) == category
    header = yaml.safe_load(render(card(records=records)).split("---\n")[1])
    assert header["size_categories"] == [category]


@pytest.mark.parametrize(
    "name",
    ["x: y", "- a", "'quote\"s'", "#hash", "line\nbreak\n---\nlicense: mit", "yes", "1e3", "é 😀"],
)
def test_any_name_stays_inside_its_yaml_value(name: str) -> None:
    text = render(card(pretty_name=name))
    header_text = text.split("\n---\n", 1)[0].removeprefix("---\n")
    header = yaml.safe_load(header_text)
    assert header["pretty_name"] == " ".join(name.split())
    assert header["license"] == "unknown"
    assert text.count("\n---\n") == 1


def test_the_packaged_model_is_named_as_not_useful() -> None:
    assert "does not write useful data" in render(card(packaged_model=True))
    assert "does not write useful data" not in render(card())
