"""Fuzzed input files through the command line: seed files in every format, config files,
prompt template directories and the paper's intermediate files. Whatever the bytes, a command
either succeeds or prints exactly one `error:` line naming the file (and the line where the
content is at fault), exits non-zero, and leaves no run directory behind; never a traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfinstruct.cli import main

# Examples: the profile's (100 by default, fewer in `make check`'s "fast" profile).
FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SYNTAX = [
    "{",
    "}",
    "[",
    "]",
    '"',
    "'",
    ":",
    ",",
    "=",
    "-",
    " ",
    "\n",
    "\r\n",
    "\t",
    "#",
    "$",
    "${",
    "${tasks}",
    "${instruction}",
    "${examples}",
    "$$",
    "[system]",
    "[user]",
    "[assistant]",
    "[[with_input]]",
    "prompt",
    "completion",
    "null",
    "true",
    "1",
    "1e999",
    "\\",
    "\\u0000",
    "\\ud800",
    "id",
    "instruction",
    "instances",
    "input",
    "output",
    "is_classification",
    "raw_instances",
    "Yes",
    "\u2028",
    "\x85",
    "\ufeff",
    "\x00",
    "\x1b",
    "é",
    "日本",
    "[bootstrap]",
    "num_instructions",
    "rouge_threshold",
    "[openai]",
]
contents = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.lists(st.sampled_from(SYNTAX), max_size=80).map(
        lambda t: "".join(t).encode("utf-8", "surrogatepass")
    ),
    st.integers(1000, 200_000).map(lambda n: b"x" * n),  # one huge line
    st.just(b""),
)


# Problems of a file as a whole, where no line is at fault.
WHOLE_FILE_PROBLEMS = ("empty", "not found", "no seed tasks found", "missing required placeholder")


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def check(result: Result, path: Path, out: Path) -> None:
    """Success, or one clear error line naming the file, with nothing left behind."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        return
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    if str(path) not in lines[0]:  # the file was accepted; the run itself failed
        assert (out / "selfinstruct.db").is_file(), lines[0]
        return
    if not any(whole in lines[0] for whole in WHOLE_FILE_PROBLEMS):
        assert re.search(r"line \d+|field '", lines[0]), lines[0]
    assert not out.exists() or not any(out.iterdir()), "a run was partly written"


@FUZZ
@given(ext=st.sampled_from([".jsonl", ".csv", ".txt", ".yaml"]), data=contents)
def test_seed_files(tmp_path_factory, ext: str, data: bytes) -> None:
    root = tmp_path_factory.mktemp("seeds")
    path = root / f"seeds{ext}"
    path.write_bytes(data)
    out = root / "run"
    check(
        invoke(
            "bootstrap",
            "--backend",
            "fake",
            "--seeds",
            path,
            "--num-instructions",
            1,
            "-q",
            "--out",
            out,
        ),
        path,
        out,
    )


@FUZZ
@given(data=contents)
def test_config_files(tmp_path_factory, data: bytes) -> None:
    root = tmp_path_factory.mktemp("config")
    path = root / "config.toml"
    path.write_bytes(data)
    out = root / "run"
    check(
        invoke(
            "bootstrap",
            "--backend",
            "fake",
            "--config",
            path,
            "--num-instructions",
            1,
            "-q",
            "--out",
            out,
        ),
        path,
        out,
    )


TEMPLATE_FILES = [
    *(
        f"{style}/{name}.txt"
        for style in ("completion", "chat")
        for name in (
            "bootstrap",
            "bootstrap_classification",
            "classify",
            "instances_classification",
            "instances_generation",
        )
    ),
    "fewshot/classify.txt",
    "fewshot/instances_classification.txt",
    "finetune.toml",
]


@FUZZ
@given(relative=st.sampled_from(TEMPLATE_FILES), data=contents)
def test_template_directories(tmp_path_factory, relative: str, data: bytes) -> None:
    root = tmp_path_factory.mktemp("templates")
    path = root / "templates" / relative
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    out = root / "run"
    style = "chat" if relative.startswith("chat/") else "completion"
    check(
        invoke(
            "bootstrap",
            "--backend",
            "fake",
            "--templates",
            root / "templates",
            "--prompt-style",
            style,
            "--num-instructions",
            1,
            "-q",
            "--out",
            out,
        ),
        path,
        out,
    )


GOOD_INSTANCES = (
    json.dumps(
        {"instruction": "Name a color.", "raw_instances": "Output: Blue", "instance_metadata": {}}
    )
    + "\n"
)
GOOD_LABELS = json.dumps({"instruction": "Name a color.", "is_classification": " No"}) + "\n"


@FUZZ
@given(which=st.sampled_from(["instances", "labels"]), data=contents, prefix=st.booleans())
def test_imported_paper_files(tmp_path_factory, which: str, data: bytes, prefix: bool) -> None:
    root = tmp_path_factory.mktemp("paper")
    instances, labels = root / "machine_generated_instances.jsonl", root / "is_clf.jsonl"
    instances.write_text(GOOD_INSTANCES, encoding="utf-8")
    labels.write_text(GOOD_LABELS, encoding="utf-8")
    path = instances if which == "instances" else labels
    path.write_bytes((path.read_bytes() if prefix else b"") + data)
    out = root / "run"
    check(
        invoke(
            "prepare",
            "--import-instances",
            instances,
            "--import-labels",
            labels,
            "-q",
            "--out",
            out,
        ),
        path,
        out,
    )
