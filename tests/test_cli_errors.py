"""The command line on bad input: one `error:` line naming file, line and field, exit code 2,
no traceback, and nothing written (no run directory created, an existing run left unchanged).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from conftest import task_line, write_file

from selfinstruct.cli import main
from selfinstruct.store.run_store import RunStore

SCRIPT = Path(sys.executable).parent / "selfinstruct"
LAUNCHERS = {
    "module": [sys.executable, "-m", "selfinstruct"],
    "script": [str(SCRIPT)],
}
COMMANDS = (
    "run",
    "bootstrap",
    "classify",
    "instances",
    "relabel",
    "judge",
    "prepare",
    "export",
    "report",
    "evaluate",
    "validate",
    "finetune",
    "merge",
    "review",
)
# Files the run store rewrites just by being opened (lock holder's pid, SQLite journal).
VOLATILE = {".lock", "selfinstruct.db", "selfinstruct.db-wal", "selfinstruct.db-shm"}

SEEDS_TXT = (
    "Write a haiku about the sea.\nName three primary colors.\n"
    "Summarize the plot of a famous novel.\nExplain how a rainbow forms.\n"
)


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def launch(launcher: str, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*LAUNCHERS[launcher], *(str(a) for a in args)], capture_output=True, text=True, timeout=120
    )


def assert_error(exit_code: int, stdout: str, stderr: str, *fragments: str) -> str:
    """Exit code 2, a single `error:` line on stderr containing every fragment, no traceback."""
    assert exit_code == 2, (exit_code, stdout, stderr)
    assert "Traceback" not in stdout + stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def assert_cli_error(result: Result, *fragments: str) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return assert_error(result.exit_code, result.stdout, result.stderr, *fragments)


def snapshot(run_dir: Path) -> dict[str, object]:
    """Everything in a run directory: files' bytes and the whole database's content."""
    files = {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name not in VOLATILE
    }
    with sqlite3.connect(run_dir / "selfinstruct.db") as db:
        dump = list(db.iterdump())
    return {"files": files, "db": dump}


def instruction_rows(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / "selfinstruct.db") as db:
        return db.execute(
            "SELECT id, instruction, request_idx FROM instructions ORDER BY id"
        ).fetchall()


@pytest.fixture
def seeds_file(tmp_path: Path) -> Path:
    path = tmp_path / "seeds.txt"
    path.write_text(SEEDS_TXT, encoding="utf-8")
    return path


@pytest.fixture
def bootstrapped(tmp_path: Path, seeds_file: Path) -> Path:
    """A run directory after stage 1 (5 instructions, from seeds.txt, fake backend)."""
    out = tmp_path / "run"
    result = invoke(
        "bootstrap",
        "--backend",
        "fake",
        "--seeds",
        seeds_file,
        "--num-instructions",
        5,
        "--out",
        out,
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    assert len(instruction_rows(out)) == 5
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    result = invoke("run", "--backend", "fake", "--num-instructions", 8, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out


# ---------------------------------------------------------------------------------------------
# Malformed seed files and config files: clean error, nothing written

BAD_SEEDS = {
    # name: (content, fragments the error line must contain besides the path)
    "bad_json.jsonl": (
        "\n".join([task_line(0), task_line(1), '{"id": oops', task_line(3)]),
        [", line 3:", "invalid JSON"],
    ),
    "missing.jsonl": (
        "\n".join([task_line(0), task_line(1, instruction=...)]),
        [", line 2, field 'instruction':", "missing"],
    ),
    "mistyped.jsonl": (
        "\n".join([task_line(0), task_line(1, is_classification="yes")]),
        [", line 2, field 'is_classification':"],
    ),
    "instances.jsonl": (
        "\n".join([task_line(0), task_line(1, instances="none")]),
        [", line 2, field 'instances':"],
    ),
    "output.jsonl": (
        task_line(0, instances=[{"input": "", "output": 3}]),
        [", line 1, field 'instances[0].output':"],
    ),
    "duplicate.jsonl": (
        "\n".join([task_line(0), task_line(1), task_line(0)]),
        [", line 3, field 'id':", "duplicate"],
    ),
    "utf8.txt": (b"Write a haiku.\nName \xff\xfe a color.\nAdd numbers.\n", [", line 2:", "UTF-8"]),
    "binary.csv": (b"instruction,output\n\x00\x00\x01PNG", [", line 2:", "NUL"]),
    "empty.yaml": ("", ["empty"]),
    "blank.txt": ("  \n\n\t\n", ["empty"]),
    "no_instruction.csv": (
        "prompt,input,output\nName a color.,,Blue\n",
        [", line 1, field 'instruction':"],
    ),
    "columns.csv": (
        "instruction,input,output\nName a color.,,Blue\nAdd 2 and 2.,4\n",
        [", line 3:", "expected 3 columns, found 2"],
    ),
    "unknown_column.csv": (
        "instruction,output,notes\nName a color.,Blue,x\n",
        [", line 2, field 'notes':"],
    ),
    "syntax.yaml": (
        "- instruction: Name a color.\n  output: Blue\n- instruction: [oops\n",
        [", line 4:", "invalid YAML"],
    ),
    "not_list.yaml": ("instruction: Name a color.\noutput: Blue\n", [", line 1:", "list"]),
    "item.yaml": (
        "- instruction: Name a color.\n  output: Blue\n- Add 2 and 2.\n",
        [", line 3:", "mapping"],
    ),
    "unknown_key.yaml": (
        "- instruction: Name a color.\n  colour: Blue\n",
        [", line 1, field 'colour':"],
    ),
    "seeds.docx": ("Name a color.\n", ["unknown seed format '.docx'"]),
}

BAD_CONFIGS = {
    "unknown.toml": (
        'backend = "fake"\nnum_instruction = 5\n',
        [", line 2, field 'num_instruction':", "unknown setting"],
    ),
    "unknown_in_section.toml": (
        "[bootstrap]\ntemperature = 0.5\nbogus = 1\n",
        [", line 3, field 'bootstrap.bogus':"],
    ),
    "string_for_int.toml": ('num_instructions = "ten"\n', [", line 1, field 'num_instructions':"]),
    "bool_for_int.toml": (
        "\n[instances]\nmax_instances = true\n",
        [", line 3, field 'instances.max_instances':"],
    ),
    "stop_ints.toml": ("[classify]\nstop = [1, 2]\n", [", line 2, field 'classify.stop':"]),
    "syntax.toml": ('backend = "fake"\nmodel = \n', [", line 2:", "invalid TOML"]),
    "style.toml": ('prompt_style = "foo"\n', [", line 1, field 'prompt_style':"]),
    "rouge.toml": (
        "[bootstrap]\nrouge_threshold = 2\n",
        [", line 2, field 'bootstrap.rouge_threshold':"],
    ),
    "machine.toml": (
        "[bootstrap]\nnum_prompt_instructions = 3\nnum_machine_instructions = 4\n",
        [", line 3, field 'bootstrap.num_machine_instructions':"],
    ),
    "utf8.toml": (b'backend = "fake"\nmodel = "\xff\xfe"\n', [", line 2:", "UTF-8"]),
}


def write_input(tmp_path: Path, name: str, content: str | bytes) -> Path:
    return write_file(tmp_path, name, content)


@pytest.mark.parametrize("name", sorted(BAD_SEEDS))
def test_bad_seed_file_creates_no_run_directory(tmp_path: Path, name: str) -> None:
    content, fragments = BAD_SEEDS[name]
    seeds = write_input(tmp_path, name, content)
    out = tmp_path / "run"
    result = invoke("run", "--backend", "fake", "--seeds", seeds, "--out", out, "--quiet")
    assert_cli_error(result, f"error: {seeds.resolve()}", *fragments)
    assert result.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize("name", sorted(BAD_SEEDS))
def test_bad_seed_file_leaves_empty_out_directory_empty(tmp_path: Path, name: str) -> None:
    content, fragments = BAD_SEEDS[name]
    seeds = write_input(tmp_path, name, content)
    out = tmp_path / "run"
    out.mkdir()
    result = invoke("bootstrap", "--backend", "fake", "--seeds", seeds, "--out", out)
    assert_cli_error(result, str(seeds.resolve()), *fragments)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_file_creates_no_run_directory(tmp_path: Path, name: str) -> None:
    content, fragments = BAD_CONFIGS[name]
    config = write_input(tmp_path, name, content)
    out = tmp_path / "run"
    result = invoke("run", "--backend", "fake", "--config", config, "--out", out, "--quiet")
    assert_cli_error(result, f"error: {config}", *fragments)
    assert not out.exists()
    out.mkdir()
    result = invoke("bootstrap", "--backend", "fake", "--config", config, "--out", out)
    assert_cli_error(result, str(config), *fragments)
    assert list(out.iterdir()) == []


def test_missing_seed_and_config_files(tmp_path: Path) -> None:
    out = tmp_path / "run"
    missing = tmp_path / "nope.jsonl"
    assert_cli_error(
        invoke("run", "--backend", "fake", "--seeds", missing, "--out", out),
        str(missing),
        "not found",
    )
    assert_cli_error(
        invoke("run", "--backend", "fake", "--config", tmp_path / "nope.toml", "--out", out),
        str(tmp_path / "nope.toml"),
        "not found",
    )
    assert_cli_error(
        invoke("run", "--backend", "fake", "--seeds", tmp_path, "--out", out), str(tmp_path)
    )
    assert not out.exists()


def test_bad_seeds_named_in_config_file(tmp_path: Path) -> None:
    seeds = write_input(tmp_path, "seeds.csv", "instruction,output\nName a color.,Blue,Red\n")
    config = write_input(tmp_path, "settings.toml", 'seeds = "seeds.csv"\nbackend = "fake"\n')
    out = tmp_path / "run"
    result = invoke("run", "--config", config, "--out", out)
    assert_cli_error(result, str(seeds.resolve()), ", line 2:", "expected 2 columns, found 3")
    assert not out.exists()


@pytest.mark.parametrize("name", ["bad_json.jsonl", "columns.csv", "syntax.yaml"])
def test_bad_seed_file_on_existing_run_changes_nothing(
    bootstrapped: Path, tmp_path: Path, name: str
) -> None:
    content, fragments = BAD_SEEDS[name]
    seeds = write_input(tmp_path, name, content)
    before = snapshot(bootstrapped)
    for command in ("bootstrap", "run"):  # the only ones that take seeds
        result = invoke(command, "--seeds", seeds, "--out", bootstrapped, "--quiet")
        assert_cli_error(result, str(seeds.resolve()), *fragments)
    assert snapshot(bootstrapped) == before


@pytest.mark.parametrize("name", ["unknown_in_section.toml", "syntax.toml", "rouge.toml"])
def test_bad_config_on_existing_run_changes_nothing(
    bootstrapped: Path, tmp_path: Path, name: str
) -> None:
    content, fragments = BAD_CONFIGS[name]
    config = write_input(tmp_path, name, content)
    before = snapshot(bootstrapped)
    for command in ("bootstrap", "classify", "instances", "prepare", "run"):
        result = invoke(command, "--config", config, "--out", bootstrapped, "--quiet")
        assert_cli_error(result, str(config), *fragments)
    assert snapshot(bootstrapped) == before


# Through the real entry points, in a subprocess.


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
@pytest.mark.parametrize("name", ["bad_json.jsonl", "utf8.txt", "item.yaml"])
@pytest.mark.slow  # a process of its own
def test_entry_point_bad_seed_file(tmp_path: Path, launcher: str, name: str) -> None:
    content, fragments = BAD_SEEDS[name]
    seeds = write_input(tmp_path, name, content)
    out = tmp_path / "run"
    proc = launch(launcher, "run", "--backend", "fake", "--seeds", seeds, "--out", out)
    assert_error(proc.returncode, proc.stdout, proc.stderr, str(seeds.resolve()), *fragments)
    assert not out.exists()


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
@pytest.mark.parametrize("name", ["unknown_in_section.toml", "string_for_int.toml"])
@pytest.mark.slow  # a process of its own
def test_entry_point_bad_config_file(tmp_path: Path, launcher: str, name: str) -> None:
    content, fragments = BAD_CONFIGS[name]
    config = write_input(tmp_path, name, content)
    out = tmp_path / "run"
    out.mkdir()
    proc = launch(launcher, "bootstrap", "--backend", "fake", "--config", config, "--out", out)
    assert_error(proc.returncode, proc.stdout, proc.stderr, str(config), *fragments)
    assert list(out.iterdir()) == []


def test_entry_point_script_exists() -> None:
    assert SCRIPT.is_file(), f"console script missing next to {sys.executable}"


# ---------------------------------------------------------------------------------------------
# --help


@pytest.mark.parametrize("command", COMMANDS)
def test_help_mentions_every_option(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    found = main.get_command(click.Context(main), command)
    assert found is not None
    params = found.params
    assert params
    for param in params:
        for opt in (*param.opts, *param.secondary_opts):
            assert opt in result.stdout, (command, opt)
        if isinstance(param, click.Option):
            assert param.help, (command, param.name)  # every option is explained
        else:
            assert param.name.upper() in result.stdout  # arguments appear in the usage line


def test_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert set(main.list_commands(click.Context(main))) == set(COMMANDS)
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
@pytest.mark.slow  # a process of its own
def test_entry_point_help(launcher: str) -> None:
    proc = launch(launcher, "run", "--help")
    assert proc.returncode == 0
    assert "--num-instructions" in proc.stdout and "--seeds" in proc.stdout
    assert proc.stderr == ""


# ---------------------------------------------------------------------------------------------
# Stage commands on something that is not a run


@pytest.mark.parametrize("command", ["classify", "instances", "prepare"])
def test_stage_on_missing_directory(tmp_path: Path, command: str) -> None:
    out = tmp_path / "nothing"
    assert_cli_error(invoke(command, "--out", out), str(out), "not a run directory")
    assert not out.exists()


@pytest.mark.parametrize("command", ["classify", "instances", "prepare"])
def test_stage_on_non_run_directory(tmp_path: Path, command: str) -> None:
    out = tmp_path / "plain"
    out.mkdir()
    (out / "notes.txt").write_text("not a run\n", encoding="utf-8")
    assert_cli_error(invoke(command, "--out", out), str(out), "not a run directory")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("command", ["classify", "run"])
def test_out_is_a_file(tmp_path: Path, command: str) -> None:
    out = tmp_path / "file.txt"
    out.write_text("keep me\n", encoding="utf-8")
    assert_cli_error(invoke(command, "--out", out), str(out))
    assert out.read_text(encoding="utf-8") == "keep me\n"


def test_export_from_non_run_directory(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    assert_cli_error(
        invoke("export", "--run", tmp_path, "--format", "alpaca", "--out", target),
        str(tmp_path),
        "not a run directory",
    )
    assert not target.exists()


def test_out_below_a_file(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x\n", encoding="utf-8")
    out = tmp_path / "file.txt" / "run"
    result = invoke("run", "--backend", "fake", "--out", out, "--quiet")
    # An operating-system error: exit 1 (not 2), still one line and no traceback.
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert str(out) in lines[0]
    assert "Traceback" not in result.output
    assert (tmp_path / "file.txt").read_text(encoding="utf-8") == "x\n"


# ---------------------------------------------------------------------------------------------
# Changed settings on an existing run


@pytest.mark.parametrize(
    ("flags", "changed"),
    [
        (["--random-seed", "7"], "random_seed: 42 -> 7"),
        (["--prompt-style", "chat"], "prompt_style: 'completion' -> 'chat'"),
        (["--model", "fake-2"], "model: 'fake-1' -> 'fake-2'"),
        (["--tokenizer", "unicode"], "bootstrap.tokenizer: 'rouge' -> 'unicode'"),
        (["--classification-only"], "bootstrap.classification_only: False -> True"),
    ],
)
@pytest.mark.parametrize("command", ["bootstrap", "run"])  # what takes what a run is made with
def test_changed_setting_is_refused(
    bootstrapped: Path, command: str, flags: list[str], changed: str
) -> None:
    before = snapshot(bootstrapped)
    result = invoke(command, *flags, "--out", bootstrapped, "--quiet")
    line = assert_cli_error(result, str(bootstrapped), "bootstrap records", changed)
    assert "--out" in line  # says how to proceed
    assert snapshot(bootstrapped) == before


def test_changed_config_file_setting_is_refused(bootstrapped: Path, tmp_path: Path) -> None:
    config = write_input(tmp_path, "settings.toml", "[bootstrap]\ntemperature = 1.0\n")
    before = snapshot(bootstrapped)
    result = invoke("bootstrap", "--config", config, "--out", bootstrapped)
    assert_cli_error(result, "bootstrap.temperature: 0.7 -> 1.0")
    assert snapshot(bootstrapped) == before


def test_changed_seed_content_is_refused(bootstrapped: Path, seeds_file: Path) -> None:
    before = snapshot(bootstrapped)
    seeds_file.write_text(SEEDS_TXT + "Describe a sunset in one sentence.\n", encoding="utf-8")
    for command in ("bootstrap", "run"):
        result = invoke(command, "--seeds", seeds_file, "--out", bootstrapped, "--quiet")
        assert_cli_error(result, str(bootstrapped), "seeds: ")
    assert snapshot(bootstrapped) == before


def test_other_seed_file_same_content_is_accepted(bootstrapped: Path, tmp_path: Path) -> None:
    same = write_input(tmp_path, "same.csv", "instruction\n" + SEEDS_TXT)
    result = invoke("bootstrap", "--seeds", same, "--out", bootstrapped, "--quiet")
    # A CSV of the same instructions parses to the same tasks: same fingerprint, no refusal.
    assert result.exit_code == 0, result.output


def test_changed_templates_are_refused(bootstrapped: Path, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    (templates / "completion").mkdir(parents=True)
    (templates / "completion" / "bootstrap.txt").write_text(
        "Come up with a series of new tasks:\n${tasks}\n", encoding="utf-8"
    )
    before = snapshot(bootstrapped)
    result = invoke("bootstrap", "--templates", templates, "--out", bootstrapped)
    assert_cli_error(result, "templates: ")
    assert snapshot(bootstrapped) == before


def test_same_settings_resume(bootstrapped: Path, seeds_file: Path) -> None:
    rows = instruction_rows(bootstrapped)
    result = invoke(
        "bootstrap", "--backend", "fake", "--seeds", seeds_file, "--out", bootstrapped, "--quiet"
    )
    assert result.exit_code == 0, result.output
    assert instruction_rows(bootstrapped) == rows


def test_larger_num_instructions_extends_run(bootstrapped: Path) -> None:
    rows = instruction_rows(bootstrapped)
    result = invoke("bootstrap", "--num-instructions", 12, "--out", bootstrapped, "--quiet")
    assert result.exit_code == 0, result.output
    extended = instruction_rows(bootstrapped)
    assert len(extended) == 12
    assert extended[:5] == rows
    run = json.loads((bootstrapped / "run.json").read_text(encoding="utf-8"))
    assert run["counts"]["instructions"] == 12
    assert run["config"]["num_instructions"] == 12
    # The rest of the pipeline runs on the extended pool.
    result = invoke("run", "--out", bootstrapped, "--quiet")
    assert result.exit_code == 0, result.output
    run = json.loads((bootstrapped / "run.json").read_text(encoding="utf-8"))
    assert run["counts"] == {"instructions": 12, "labels": 12, "instances": 12}


def test_stage_on_existing_run_without_backend_flag_uses_runs_backend(bootstrapped: Path) -> None:
    result = invoke("classify", "--out", bootstrapped, "--quiet")
    assert result.exit_code == 0, result.output
    run = json.loads((bootstrapped / "run.json").read_text(encoding="utf-8"))
    assert run["model"] == {"backend": "fake", "model": "fake-1"}
    assert run["counts"]["labels"] == 5


# ---------------------------------------------------------------------------------------------
# Unknown backend


@pytest.mark.parametrize("command", ["run", "bootstrap"])
def test_unknown_backend_flag(tmp_path: Path, command: str) -> None:
    out = tmp_path / "run"
    result = invoke(command, "--backend", "nosuchbackend", "--out", out)
    assert result.exit_code == 2
    assert "Invalid value for '--backend'" in result.stderr
    assert "embedded" in result.stderr and "fake" in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()


def test_unknown_backend_in_config_file(tmp_path: Path) -> None:
    config = write_input(tmp_path, "settings.toml", 'model = "x"\nbackend = "nope"\n')
    out = tmp_path / "run"
    result = invoke("run", "--config", config, "--out", out, "--quiet")
    assert_cli_error(result, str(config), ", line 2, field 'backend'")
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Export


def test_export_alpaca_writes_valid_json(finished_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "alpaca.json"
    result = invoke("export", "--run", finished_run, "--format", "alpaca", "--out", target)
    assert result.exit_code == 0, result.output
    records = json.loads(target.read_text(encoding="utf-8"))
    assert isinstance(records, list) and records
    for record in records:
        assert set(record) == {"instruction", "input", "output"}
        assert all(isinstance(v, str) for v in record.values())
        assert record["instruction"].strip() and record["output"].strip()
    assert result.stdout.strip() == f"wrote {len(records)} records to {target}"
    # The same data the run itself exported.
    assert records == json.loads((finished_run / "exports" / "alpaca.json").read_text("utf-8"))


@pytest.mark.parametrize("fmt", ["openai-chat", "prompt-completion"])
def test_export_jsonl_formats(finished_run: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"{fmt}.jsonl"
    result = invoke("export", "--run", finished_run, "--format", fmt, "--out", target)
    assert result.exit_code == 0, result.output
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines
    assert all(isinstance(json.loads(line), dict) for line in lines)
    assert f"wrote {len(lines)} records" in result.stdout


def test_export_unknown_format(finished_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "x.csv"
    result = invoke("export", "--run", finished_run, "--format", "csv", "--out", target)
    assert result.exit_code == 2
    assert "Invalid value for '--format'" in result.stderr
    assert not target.exists()


def test_export_does_not_change_run(finished_run: Path, tmp_path: Path) -> None:
    before = snapshot(finished_run)
    before["files"].pop("run.json")  # export refreshes run.json's updated_at
    result = invoke(
        "export", "--run", finished_run, "--format", "alpaca", "--out", tmp_path / "a.json"
    )
    assert result.exit_code == 0
    after = snapshot(finished_run)
    after["files"].pop("run.json")
    assert after == before


def test_export_out_is_directory(finished_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "dir"
    target.mkdir()
    result = invoke("export", "--run", finished_run, "--format", "alpaca", "--out", target)
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert list(target.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] == ["dir"]  # no temp file left behind
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {target}"), result.stderr
    assert ".tmp" not in lines[0]


# ---------------------------------------------------------------------------------------------
# Templates


def make_templates(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("files", "fragments"),
    [
        (
            {"completion/bootstrap.txt": "Come up with tasks:\n${tasks}\n${bogus}\n"},
            ["completion/bootstrap.txt, line 3:", "${bogus}"],
        ),
        (
            {"completion/classify.txt": "Is it a classification task?\n\n$instructoin\n"},
            ["completion/classify.txt, line 3:", "${instructoin}"],
        ),
        (
            {"completion/bootstrap.txt": "Cost: $5\n${tasks}\n"},
            ["completion/bootstrap.txt, line 1:", "$$"],
        ),
        (
            {"completion/instances_generation.txt": "Examples:\n${examples}\n"},
            ["completion/instances_generation.txt", "${instruction}"],
        ),
        (
            {
                "finetune.toml": '[[with_input]]\nprompt = "${instruction} ${inptu}"\n'
                'completion = "x"\n'
                '[[without_input]]\nprompt = "${instruction}"\ncompletion = "x"\n'
            },
            ["finetune.toml", "${inptu}"],
        ),
    ],
)
def test_bad_template_refused_before_anything_is_written(
    tmp_path: Path, files: dict[str, str], fragments: list[str]
) -> None:
    templates = make_templates(tmp_path / "templates", files)
    out = tmp_path / "run"
    result = invoke("run", "--backend", "fake", "--templates", templates, "--out", out)
    assert_cli_error(result, str(templates), *fragments)
    assert not out.exists()


def test_bad_chat_template_refused(tmp_path: Path) -> None:
    templates = make_templates(
        tmp_path / "templates",
        {"chat/classify.txt": "[system]\nYou label tasks.\n[moderator]\n${instruction}\n"},
    )
    out = tmp_path / "run"
    out.mkdir()
    result = invoke(
        "bootstrap",
        "--backend",
        "fake",
        "--prompt-style",
        "chat",
        "--templates",
        templates,
        "--out",
        out,
    )
    assert_cli_error(result, "chat/classify.txt, line 3:", "[moderator]")
    assert list(out.iterdir()) == []


def test_bad_template_on_existing_run_changes_nothing(bootstrapped: Path, tmp_path: Path) -> None:
    templates = make_templates(
        tmp_path / "templates",
        {"completion/instances_classification.txt": "${instruction} ${label}\n"},
    )
    before = snapshot(bootstrapped)
    result = invoke("instances", "--templates", templates, "--out", bootstrapped)
    assert_cli_error(result, "instances_classification.txt, line 1:", "${label}")
    assert snapshot(bootstrapped) == before


def test_missing_template_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = invoke("run", "--backend", "fake", "--templates", tmp_path / "nope", "--out", out)
    assert_cli_error(result, str(tmp_path / "nope"), "not found")
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# One process per run directory


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
@pytest.mark.slow  # a process of its own
def test_run_in_use_by_another_process(tmp_path: Path, launcher: str) -> None:
    out = tmp_path / "run"
    store = RunStore.open(out)
    try:
        proc = launch(
            launcher, "run", "--backend", "fake", "--num-instructions", 3, "--out", out, "--quiet"
        )
        assert proc.returncode != 0
        assert_error(proc.returncode, proc.stdout, proc.stderr, str(out), "in use")
        assert store.pool.instruction_count() == 0
    finally:
        store.close()


@pytest.mark.slow  # a process of its own
def test_run_in_use_on_existing_run(bootstrapped: Path) -> None:
    before = snapshot(bootstrapped)
    with RunStore.open(bootstrapped):
        proc = launch("module", "classify", "--out", bootstrapped, "--quiet")
        assert_error(proc.returncode, proc.stdout, proc.stderr, "in use")
    assert snapshot(bootstrapped) == before
    # Once the lock is released the same command succeeds.
    proc = launch("module", "classify", "--out", bootstrapped, "--quiet")
    assert proc.returncode == 0, proc.stderr


def test_rerun_after_store_created_without_seeds(tmp_path: Path) -> None:
    out = tmp_path / "run"
    RunStore.open(out).close()  # what an interrupted first run leaves behind
    result = invoke("run", "--backend", "fake", "--num-instructions", 3, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------------------------------------
# Seeds that parse but cannot be stored


def test_lone_surrogate_in_seed_file(tmp_path: Path) -> None:
    line = json.dumps(json.loads(task_line(0, name="x")) | {"name": "\ud800"})
    seeds = write_input(tmp_path, "seeds.jsonl", line)
    assert "\\ud800" in seeds.read_text(encoding="utf-8")
    out = tmp_path / "run"
    result = invoke("run", "--backend", "fake", "--seeds", seeds, "--out", out, "--quiet")
    assert_cli_error(result, str(seeds.resolve()), ", line 1, field 'name'")
    assert not out.exists()
