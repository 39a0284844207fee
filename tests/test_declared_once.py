"""A stage, an export format and a backend are each declared once, by examples written as a
new one would be (tests/declared_once), wired in the way the architecture says:

- the length check stage is a module and its two templates; with one line in the stage
  registry and one migration, everything that deals with stages takes it in: its command
  and flags, settings section, fingerprint, estimate, records, run.json counts, prepare's
  drops (in the summary, quality_drops.jsonl and the report), its numbers in the report and
  the dataset card, merge, and the fake backend's answers;
- the tsv export format is one module in the exporters' package;
- the echo backend is one module and its name among the built-ins: it has its settings
  section, its flag and its place in the fingerprint.
Nothing outside their files is edited."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from conftest import cli

from selfinstruct import exporters
from selfinstruct.llm import registry as llm_registry
from selfinstruct.stages import registry
from selfinstruct.store import schema

EXAMPLE = Path(__file__).parent / "declared_once"
TEMPLATES = EXAMPLE / "templates"
RUN = ("--backend", "fake", "--num-instructions", "12", "--templates", str(TEMPLATES), "-q")


@pytest.fixture
def length_check(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The example stage, wired in the two places a new stage is: the registry (before
    prepare, which filters on its records) and the store's migrations."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import length_check

    stages = registry.STAGES
    monkeypatch.setattr(registry, "STAGES", (*stages[:-1], length_check.STAGE_DEF, stages[-1]))
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, length_check.MIGRATION])
    yield length_check
    sys.modules.pop("length_check", None)


def test_each_example_is_its_own_files() -> None:
    files = sorted(str(p.relative_to(EXAMPLE)) for p in EXAMPLE.rglob("*") if p.is_file())
    files = [f for f in files if "__pycache__" not in f]
    assert files == [
        "echo_backend.py",  # the backend
        "length_check.py",  # the stage, and its two templates
        "templates/chat/length_check.txt",
        "templates/completion/length_check.txt",
        "tsv.py",  # the export format
    ]


def test_it_has_a_command_flags_and_a_settings_section(
    length_check: ModuleType, tmp_path: Path
) -> None:
    assert "length_check" in cli("--help").stdout
    assert "long enough" in cli("length_check", "--help").stdout
    for command in ("run", "length_check", "prepare"):
        shown = cli(command, "--help").stdout
        assert "--length-check / --no-length-check" in shown and "--length-min-words" in shown
    refused = cli(
        "run", "--out", str(tmp_path / "r"), *RUN, "--set", "length_check.x=1", check=False
    )
    assert refused.returncode == 2 and "length_check.x" in refused.stderr
    bad = cli(
        "run", "--out", str(tmp_path / "r"), *RUN, "--set", "length_check.min_words=-1", check=False
    )
    assert bad.returncode == 2 and "min_words" in bad.stderr


def test_estimate_counts_its_requests(length_check: ModuleType, tmp_path: Path) -> None:
    shown = cli("run", "--out", str(tmp_path / "new"), *RUN, "--length-check", "--estimate")
    assert "length_check" in shown.stdout
    off = cli("run", "--out", str(tmp_path / "new"), *RUN, "--estimate")
    assert "length_check" not in off.stdout  # off: not run, nothing expected


def test_a_run_keeps_its_records_and_everything_reads_them(
    length_check: ModuleType, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    cli("run", "--out", str(run), *RUN, "--length-check")
    checks = rows(run, "SELECT verdict, words FROM length_checks")
    verdicts = {verdict for verdict, _ in checks}
    assert checks and verdicts <= {"too_short", "long_enough"} and "too_short" in verdicts
    # The fake backend answered its requests with the stage's own fake answers.
    answers = {
        text for (text,) in rows(run, "SELECT text FROM responses WHERE stage = ?", "length_check")
    }
    assert answers <= {" too short", " long enough"}

    record = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert record["counts"]["length_checks"] == len(checks)
    assert record["length_check"]["checked"] == len(checks)
    assert record["config"]["length_check"]["enabled"] is True
    assert "length_check.min_words" in stored_fingerprints(run)["length_check"]
    dropped = record["funnel"]["prepared"]["instances_dropped"]
    short = sum(1 for verdict, _ in checks if verdict == "too_short")
    assert 0 < dropped["too_short"] <= short  # some short ones fell to other filters first

    drops = [json.loads(line) for line in (run / "quality_drops.jsonl").open(encoding="utf-8")]
    assert any(d["reason"] == "too_short" and d["detail"].endswith("words") for d in drops)
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    prepared = next(
        s for s in report["funnel"] if s["stage"] == "prepare" and s["unit"] == "instances"
    )
    assert "too_short" in {reason["reason"] for reason in prepared["dropped"]}
    assert report["length_check"]["checked"] == len(checks)
    assert "length_check: checked" in (run / "report.html").read_text(encoding="utf-8")
    card = (run / "exports" / "README.md").read_text(encoding="utf-8")
    assert f"Length check: {short:,} of {len(checks):,} instances" in card

    # Its settings are part of its fingerprint: a change once it has records is refused.
    changed = cli("run", "--out", str(run), *RUN, "--length-min-words", "5", check=False)
    assert changed.returncode == 2 and "length_check.min_words: 1 -> 5" in changed.stderr


def test_merge_copies_its_records(length_check: ModuleType, tmp_path: Path) -> None:
    runs = []
    for seed in (1, 2):
        runs.append(tmp_path / f"run{seed}")
        cli("run", "--out", str(runs[-1]), *RUN, "--length-check", "--random-seed", str(seed))
    merged = tmp_path / "merged"
    cli("merge", *map(str, runs), "--out", str(merged), "-q")
    copied = rows(merged, "SELECT instruction_id, position, verdict FROM length_checks")
    instances = rows(merged, "SELECT instruction_id, position FROM parsed_instances")
    assert copied and {(i, p) for i, p, _ in copied} == set(instances)
    keys = rows(merged, "SELECT response_key FROM length_checks")
    cached = {key for (key,) in rows(merged, "SELECT key FROM responses")}
    assert {key for (key,) in keys} <= cached  # every record's answer came along


def rows(run: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(run / "selfinstruct.db") as db:
        return db.execute(sql, args).fetchall()


def stored_fingerprints(run: Path) -> dict[str, dict[str, object]]:
    (value,) = rows(run, "SELECT value FROM meta WHERE key = 'fingerprints'")[0]
    found: dict[str, dict[str, object]] = json.loads(str(value))
    return found


@pytest.fixture
def tsv(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The example format's module in the exporters' package (as if it were a file there)."""
    monkeypatch.setattr(exporters, "__path__", [*exporters.__path__, str(EXAMPLE)])
    exporters.formats.cache_clear()
    yield
    exporters.formats.cache_clear()


def test_an_export_format_is_one_module(tsv: None, tmp_path: Path) -> None:
    assert "|tsv]" in cli("export", "--help").stdout
    run = tmp_path / "run"
    cli("run", "--out", str(run), *RUN[:-3], "-q")
    written = (run / "exports" / "dataset.tsv").read_text(encoding="utf-8").splitlines()
    alpaca = json.loads((run / "exports" / "alpaca.json").read_text(encoding="utf-8"))
    assert written[0] == "instruction\tinput\toutput" and len(written) == len(alpaca) + 1
    assert "`dataset.tsv` (config `dataset`)" in (run / "exports" / "README.md").read_text()
    out = tmp_path / "again.tsv"
    shown = cli("export", "--run", str(run), "--format", "tsv", "--out", str(out))
    assert f"wrote {len(alpaca)} records" in shown.stdout
    assert out.read_text(encoding="utf-8").splitlines() == written


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The example backend's module, and its name among the built-ins."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setitem(llm_registry.BUILT_IN, "echo", "echo_backend:EchoLLM")
    llm_registry._targets.cache_clear()
    llm_registry.backend_class.cache_clear()
    yield
    llm_registry._targets.cache_clear()
    llm_registry.backend_class.cache_clear()


def test_a_backend_is_one_module_and_its_name(echo: None, tmp_path: Path) -> None:
    shown = cli("run", "--help").stdout
    assert "--echo-suffix" in shown and "echo" in shown
    run = tmp_path / "run"
    cli("bootstrap", "--out", str(run), "--backend", "echo", "--echo-suffix", " [echo]", "-q")
    record = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert record["config"]["echo"] == {"suffix": " [echo]"}
    assert stored_fingerprints(run)["bootstrap"]["echo.suffix"] == " [echo]"
    answers = rows(run, "SELECT text FROM responses WHERE stage = 'bootstrap'")
    assert answers and all(str(text).endswith(" [echo]") for (text,) in answers)
