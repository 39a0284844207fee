"""Build the run-compatibility corpus tests/data/runs-compat-COMMIT.tar.gz (fake backend)."""

# Run it with the code whose behaviour the corpus pins, e.g. a worktree of that commit:
#
#     git worktree add ../baseline COMMIT
#     PYTHONPATH=../baseline/src .venv/bin/python scripts/make_compat_runs.py
#
# For each run NAME the script generates the run, keeps a copy, then does what
# tests/test_run_compat.py does: `run --out` (a complete run resumes with nothing to
# generate; the partial run is completed), `prepare --out` and `export --format sharegpt`.
# The archive holds:
#
#   runs/NAME/                   the run directory right after generation (the test's input)
#   expected/NAME/               the files those three commands changed, as they left them
#   expected/NAME.tables.json    the database tables they changed: {table: rows}
#   expected/NAME.sharegpt.json  the export
#   manifest.json                the code it was made with, each run's commands, what it
#                                covers, and every file and table the run had at the end
#
# A file or table missing from expected/ was left as generated: runs/ holds it once (the
# archive stays small: a database or report stored twice costs 60 or 25 KB per run).

from __future__ import annotations

import argparse
import gzip
import importlib.util
import io
import json
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = "selfinstruct.db"
SQLITE_SIDE_FILES = ("-wal", "-shm")  # a live connection's files, not the run's data
FAKE = ("--backend", "fake")
NO_VERBS = "prepare.report_verbs=false"  # the report's verb chart needs a spaCy parse
# After generation, what the test does too ({sharegpt}: the export's file).
RESUME = (
    ("run", "--out", "{run}", "-q"),
    ("prepare", "--out", "{run}", "-q"),
    ("export", "--run", "{run}", "--format", "sharegpt", "--out", "{sharegpt}", "-q"),
)
# Fixed archive metadata: the archive's bytes depend on its files only.
MTIME = 1_764_374_400  # 2025-11-29T00:00:00Z
DIR_MODE, FILE_MODE = 0o755, 0o644


@dataclass(frozen=True)
class RunSpec:
    """One run of the corpus. In commands, {run} is the run directory and {scratch} a
    directory deleted before the run is resumed (so nothing later can read from it)."""

    name: str
    covers: str
    commands: tuple[tuple[str, ...], ...]
    complete: bool = True  # False: generation stops early, and the resume completes it
    # What the run must contain to cover what it says: drop reasons in run.json's funnel,
    # and SQL counts that must be positive.
    drops: tuple[str, ...] = ()
    counts: tuple[str, ...] = ()


def run_cmd(
    n: int,
    *flags: str,
    sets: tuple[str, ...] = (NO_VERBS,),
    out: str = "{run}",
    command: str = "run",
) -> tuple[str, ...]:
    """COMMAND (`run`) of N instructions with the fake backend, FLAGS, and a --set per item
    of SETS."""
    assignments = [part for text in sets for part in ("--set", text)]
    return (command, "--out", out, *FAKE, "--num-instructions", str(n), *flags, *assignments, "-q")


SPECS = (
    RunSpec(
        "default",
        "completion prompts and every output, the report with its verb chart (spaCy)",
        (run_cmd(20, sets=()),),
        drops=("same_input_different_output",),
    ),
    RunSpec("chat", "chat prompt style", (run_cmd(20, "--prompt-style", "chat"),)),
    RunSpec(
        "judge_relabel",
        "judge, relabel, decontamination (thresholds lowered so that the fake text has "
        "contaminated tasks and instances)",
        (
            run_cmd(
                20,
                *("--judge", "fake", "--relabel"),
                sets=(
                    NO_VERBS,
                    "prepare.decontaminate_rouge=0.35",
                    "prepare.decontaminate_ngram=4",
                ),
            ),
        ),
        drops=("contaminated", "judge_rejected", "judge_unparseable", "label_disagrees"),
    ),
    RunSpec(
        "provenance_seeds",
        "prepare.provenance and include_seed_tasks, max_instances_per_task 3",
        (
            run_cmd(
                20,
                *("--include-seed-tasks", "--max-instances-per-task", "3"),
                sets=(NO_VERBS, "prepare.provenance=true"),
            ),
        ),
        drops=("over_task_cap",),
    ),
    RunSpec(
        "classification",
        "classification_only bootstrap and prepare.classification_tasks_only",
        (
            run_cmd(
                20,
                "--classification-only",
                sets=(NO_VERBS, "prepare.classification_tasks_only=true"),
            ),
        ),
        drops=("not_classification",),
    ),
    RunSpec(
        "judge_keep_unjudged",
        "judge asked in chat style, prepare.keep_unjudged, require_yes and min_rating A",
        (
            run_cmd(
                20,
                *("--random-seed", "7", "--judge", "fake", "--judge-prompt-style", "chat"),
                sets=(
                    NO_VERBS,
                    "prepare.keep_unjudged=true",
                    'prepare.require_yes=["input", "output"]',
                    "prepare.min_rating=A",
                ),
            ),
        ),
        drops=("judge_rejected",),
        counts=("SELECT COUNT(*) FROM judgments WHERE rating IS NULL",),  # kept unjudged
    ),
    RunSpec(
        "merged",
        "`merge` of two runs with random seeds 1 and 2 (the sources gone when it resumes)",
        (
            run_cmd(12, "--random-seed", "1", out="{scratch}/seed1"),
            run_cmd(12, "--random-seed", "2", out="{scratch}/seed2"),
            ("merge", "{scratch}/seed1", "{scratch}/seed2", "--out", "{run}", "-q"),
        ),
        counts=("SELECT COUNT(DISTINCT source) FROM merge_sources",),
    ),
    RunSpec(
        "partial",
        "`bootstrap` only (judge and relabel set): the resume classifies, writes instances, "
        "relabels, judges and prepares",
        (run_cmd(20, "--judge", "fake", "--relabel", command="bootstrap"),),
        complete=False,
        drops=("judge_rejected", "label_disagrees"),
    ),
)


def selfinstruct(command: tuple[str, ...], **paths: Path) -> None:
    """`python -m selfinstruct COMMAND` with the placeholders filled in; stops on failure."""
    args = [part.format(**{k: str(v) for k, v in paths.items()}) for part in command]
    result = subprocess.run(
        [sys.executable, "-m", "selfinstruct", *args], capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"selfinstruct {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")


def git(package: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(package), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def code_under_test() -> tuple[Path, str]:
    """The selfinstruct package that `python -m selfinstruct` runs here, and its commit."""
    spec = importlib.util.find_spec("selfinstruct")
    if spec is None or spec.origin is None:
        sys.exit("selfinstruct is not importable (set PYTHONPATH to the code to pin)")
    package = Path(spec.origin).parent
    dirty = git(package, "status", "--porcelain", "--", ".")
    if dirty:  # the corpus pins a commit's behaviour, not a working state's
        sys.exit(f"{package} has uncommitted changes:\n{dirty}")
    return package, git(package, "rev-parse", "--short=7", "HEAD")


def run_files(run: Path) -> list[str]:
    """The run directory's files, relative, without SQLite's side files. Its log must be
    empty (checkpointed, as a finished command leaves it): else the database file alone
    would lack data."""
    wal = run / f"{DB_NAME}-wal"
    if wal.exists() and wal.stat().st_size:
        sys.exit(f"{wal} is not empty: the database file would be incomplete")
    return sorted(
        str(path.relative_to(run))
        for path in run.rglob("*")
        if path.is_file() and not path.name.endswith(SQLITE_SIDE_FILES)
    )


def copy_files(source: Path, names: list[str], target: Path) -> None:
    for name in names:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target / name)


def tables(db_path: Path) -> dict[str, list[list[Any]]]:
    """Every table's rows, in a fixed order (insertion order is not part of the contract)."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        found = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        return {name: sorted_rows(db, name) for (name,) in found.fetchall()}


def sorted_rows(db: sqlite3.Connection, table: str) -> list[list[Any]]:
    rows = db.execute(f'SELECT * FROM "{table}"').fetchall()
    return sorted((list(row) for row in rows), key=repr)


def check_coverage(spec: RunSpec, run: Path) -> None:
    """Stop when the run lacks what it is meant to cover (e.g. after a change of counts)."""
    prepared = json.loads((run / "run.json").read_text(encoding="utf-8"))["funnel"]["prepared"]
    seen = {*prepared["instances_dropped"], *prepared["tasks_dropped"]}
    missing = [reason for reason in spec.drops if reason not in seen]
    with sqlite3.connect(f"file:{run / DB_NAME}?mode=ro", uri=True) as db:
        missing += [sql for sql in spec.counts if not db.execute(sql).fetchone()[0]]
    if missing:
        sys.exit(f"run {spec.name} does not cover: {missing}")


def store_changes(run: Path, files: list[str], generated: Path, target: Path) -> None:
    """The files of run that differ from the generated copy, under target; the database's
    changed tables in target's sibling NAME.tables.json."""
    changed = [
        name
        for name in files
        if name != DB_NAME  # stored as tables, below
        and (
            not (generated / name).exists()
            or (generated / name).read_bytes() != (run / name).read_bytes()
        )
    ]
    copy_files(run, changed, target)
    before, after = tables(generated / DB_NAME), tables(run / DB_NAME)
    changed_tables = {name: rows for name, rows in after.items() if before.get(name) != rows}
    target.with_name(f"{target.name}.tables.json").write_text(
        json.dumps(changed_tables, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )


def build_run(spec: RunSpec, work: Path, stage: Path) -> dict[str, Any]:
    """Generate spec's run, copy it to stage/runs, resume, prepare and export it, and store
    what that changed in stage/expected. Returns the run's manifest entry."""
    run, scratch = work / "runs" / spec.name, work / "scratch" / spec.name
    scratch.mkdir(parents=True)
    for command in spec.commands:
        selfinstruct(command, run=run, scratch=scratch)
    shutil.rmtree(scratch)
    generated = stage / "runs" / spec.name
    copy_files(run, run_files(run), generated)

    expected = stage / "expected"
    expected.mkdir(exist_ok=True)
    for command in RESUME:
        selfinstruct(command, run=run, sharegpt=expected / f"{spec.name}.sharegpt.json")
    check_coverage(spec, run)
    files = run_files(run)
    store_changes(run, files, generated, expected / spec.name)
    return {
        "name": spec.name,
        "covers": spec.covers,
        "complete": spec.complete,
        "commands": [shlex.join(("selfinstruct", *command)) for command in spec.commands],
        # The report's verb-noun chart (a spaCy parse): the test needs spaCy's pipeline.
        "verb_chart": not any(NO_VERBS in command for command in spec.commands),
        "files": files,
        "tables": sorted(tables(run / DB_NAME)),
    }


def normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Archive metadata that says nothing of the machine or the time it was made on."""
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = DIR_MODE if info.isdir() else FILE_MODE
    return info


def write_archive(stage: Path, out: Path) -> None:
    """stage's files in name order, normalized, gzip header without a timestamp."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(stage.rglob("*")):
            name = str(path.relative_to(stage))
            archive.add(path, arcname=name, recursive=False, filter=normalized)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gzip.compress(buffer.getvalue(), compresslevel=9, mtime=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="archive (default: tests/data/...)")
    args = parser.parse_args()
    package, commit = code_under_test()
    out = args.out or ROOT / "tests" / "data" / f"runs-compat-{commit}.tar.gz"
    print(f"selfinstruct from {package} (commit {commit})")
    with tempfile.TemporaryDirectory(prefix="compat-runs-") as tmp:
        work, stage = Path(tmp) / "work", Path(tmp) / "stage"
        stage.mkdir()
        entries = []
        for spec in SPECS:
            print(f"  {spec.name}: {spec.covers}")
            entries.append(build_run(spec, work, stage))
        manifest = {
            "made_with": {"commit": commit, "package": str(package)},
            "resume": [shlex.join(("selfinstruct", *command)) for command in RESUME],
            "runs": entries,
        }
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        write_archive(stage, out)
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
