"""Disk and filesystem faults: a full or read-only run directory gives one clear error, a
non-zero exit and an intact store; once the cause is gone, a rerun completes the run.

Faults are injected two ways: inside the process (SQLite's page limit, a failing fsync), which
works everywhere, and with a real size-limited or read-only tmpfs mounted in a private mount
namespace (`unshare -r -m`), where the machine allows it."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import assert_same_nonempty, cli, store_snapshot

# Fault injection around 400-instruction runs, each run twice or more.
pytestmark = pytest.mark.slow

COUNT = 400
ARGS = ["--backend", "fake", "--num-instructions", str(COUNT), "--random-seed", "3", "-q"]
HINT = "everything committed before this point is intact"


def faulty_launcher(
    tmp_path: Path, *, max_pages: int | None = None, fail_fsync: str | None = None
) -> Path:
    """A script that runs the CLI with a fault injected: SQLite may not grow the store past
    max_pages (it answers "database or disk is full"), or the fsync of our own files whose
    path contains `fail_fsync` fails with ENOSPC."""
    script = tmp_path / "faulty.py"
    script.write_text(
        textwrap.dedent(f"""
        import errno, os, sqlite3, sys
        if {max_pages!r} is not None:
            _connect = sqlite3.connect
            def connect(*args, **kwargs):
                db = _connect(*args, **kwargs)
                db.execute("PRAGMA max_page_count = {max_pages}")
                return db
            sqlite3.connect = connect
        if {fail_fsync!r} is not None:
            _fsync = os.fsync
            def fsync(fd):
                if {fail_fsync!r} in os.readlink(f"/proc/self/fd/{{fd}}"):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                _fsync(fd)
            os.fsync = fsync
        from selfinstruct.cli import main
        sys.argv[0] = "selfinstruct"
        main()
    """)
    )
    return script


def run_script(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=600
    )


def assert_clean_failure(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def assert_prefix_of(run_dir: Path, reference: dict[str, list[tuple]]) -> None:
    """Every record in the store is the reference's record at the same place: nothing
    accepted was lost or changed, only the tail is missing."""
    with sqlite3.connect(run_dir / "selfinstruct.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    snapshot = store_snapshot(run_dir)
    for table in ("instructions", "labels", "instances"):
        assert snapshot[table] == reference[table][: len(snapshot[table])], table


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple]]:
    out = tmp_path_factory.mktemp("reference") / "run"
    cli("run", "--out", str(out), *ARGS)
    return store_snapshot(out)


def test_store_full_mid_run(tmp_path: Path, reference: dict[str, list[tuple]]) -> None:
    out = tmp_path / "run"
    result = run_script(faulty_launcher(tmp_path, max_pages=120), "run", "--out", str(out), *ARGS)
    assert_clean_failure(result, str(out), "database or disk is full", HINT)
    assert_prefix_of(out, reference)
    assert 0 < len(store_snapshot(out)["instructions"]) < COUNT
    cli("run", "--out", str(out), *ARGS)  # space freed
    assert_same_nonempty(store_snapshot(out), reference)


def test_output_files_cannot_be_written(tmp_path: Path, reference: dict[str, list[tuple]]) -> None:
    out = tmp_path / "run"
    result = run_script(
        faulty_launcher(tmp_path, fail_fsync="all_generated_instances"),
        "run",
        "--out",
        str(out),
        *ARGS,
    )
    assert_clean_failure(result, "No space left on device", HINT)
    assert_same_nonempty(store_snapshot(out), reference)  # the store was written in full
    assert not (out / "finetuning_data" / "all_generated_instances.jsonl").exists()
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"
    cli("run", "--out", str(out), *ARGS)
    assert (out / "machine_generated_instructions.jsonl").read_text().count("\n") == COUNT


# ---------------------------------------------------------------------------------------------
# Real filesystems: a tmpfs in a private mount namespace


def _namespaces_work() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-r", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


needs_namespaces = pytest.mark.skipif(
    not _namespaces_work(), reason="unshare -r -m with tmpfs is not allowed here"
)


def in_namespace(script: str) -> subprocess.CompletedProcess:
    """Run a shell script in a private user + mount namespace (mounts vanish with it)."""
    return subprocess.run(
        ["unshare", "-r", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=600
    )


def selfinstruct_cmd(*args: str) -> str:
    return " ".join([sys.executable, "-m", "selfinstruct", *args])


@needs_namespaces
def test_real_full_disk(tmp_path: Path, reference: dict[str, list[tuple]]) -> None:
    mount, saved = tmp_path / "mnt", tmp_path / "saved"
    mount.mkdir()
    result = in_namespace(f"""
        mount -t tmpfs -o size=900k tmpfs {mount}
        {selfinstruct_cmd("run", "--out", f"{mount}/run", *ARGS)}
        status=$?
        cp -a {mount}/run {saved}
        exit $status
    """)
    assert_clean_failure(result, f"{mount}/run", HINT)
    assert "full" in result.stderr or "No space left" in result.stderr, result.stderr
    assert_prefix_of(saved, reference)
    cli("run", "--out", str(saved), *ARGS)  # on a disk with room
    assert_same_nonempty(store_snapshot(saved), reference)


@needs_namespaces
def test_real_read_only_run_directory(tmp_path: Path) -> None:
    mount, before, after = tmp_path / "mnt", tmp_path / "before", tmp_path / "after"
    mount.mkdir()
    small = ["--backend", "fake", "--num-instructions", "40", "-q"]
    result = in_namespace(f"""
        mount -t tmpfs -o size=20m tmpfs {mount}
        {selfinstruct_cmd("run", "--out", f"{mount}/run", *small)} || exit 90
        cp -a {mount}/run {before}
        mount -o remount,ro {mount}
        {selfinstruct_cmd("run", "--out", f"{mount}/run", *small[:3], "80", "-q")}
        status=$?
        cp -a {mount}/run {after}
        exit $status
    """)
    assert result.returncode != 90, result.stderr
    assert_clean_failure(result, "Read-only file system", HINT)
    assert_same_nonempty(store_snapshot(after), store_snapshot(before))
    for path in before.rglob("*"):
        if path.is_file():
            assert (after / path.relative_to(before)).read_bytes() == path.read_bytes()
