"""The test suite's own rules, read from its source (issue 28): no test asserts an upper bound
on wall-clock time (speed lives in the benchmarks; behaviour is tested with virtual clocks,
event counts and ordering), no test reads a path of one machine, and every differential test
checks that what it compares holds records."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# Every test and helper but this file (whose examples break the rules on purpose).
SOURCES = sorted(
    p
    for p in TESTS.rglob("*.py")
    if "data" not in p.relative_to(TESTS).parts and p.name != Path(__file__).name
)


def source_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# --- wall-clock upper bounds --------------------------------------------------------------

# Names that hold a duration measured on a clock: elapsed, seconds, busy_seconds, took...
DURATION = re.compile(r"(^|_)(elapsed|duration|seconds|secs|waited|took|wall)($|_)")
CLOCKS = {"monotonic", "perf_counter", "time", "monotonic_ns", "perf_counter_ns", "time_ns"}


def _is_clock_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute | ast.Name)
        and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) in CLOCKS
    )


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    return None


def _durations(tree: ast.AST) -> set[str]:
    """Variables assigned a difference of clock readings (`x = time.monotonic() - start`)."""
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.BinOp)
            and isinstance(node.value.op, ast.Sub)
            and any(_is_clock_call(part) for part in ast.walk(node.value))
        ):
            found |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return found


def _is_duration(node: ast.AST, measured: set[str]) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
        return any(_is_clock_call(part) for part in ast.walk(node))
    name = _name(node)
    return name is not None and (name in measured or bool(DURATION.search(name)))


def upper_bounds_on_time(source: str) -> Iterator[int]:
    """Lines of asserts that bound a measured duration from above (`elapsed < 2`,
    `time.monotonic() - start < 30`, `0.5 < seconds < 1.5`, `limit > waited`)."""
    tree = ast.parse(source)
    measured = _durations(tree)
    for statement in ast.walk(tree):
        if not isinstance(statement, ast.Assert):
            continue
        for node in ast.walk(statement.test):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            for left, op, right in zip(operands, node.ops, operands[1:], strict=False):
                smaller = left if isinstance(op, ast.Lt | ast.LtE) else None
                smaller = right if isinstance(op, ast.Gt | ast.GtE) else smaller
                if smaller is not None and _is_duration(smaller, measured):
                    yield node.lineno


@pytest.mark.parametrize(
    ("code", "flagged"),
    [
        ("assert elapsed < 2", True),
        ("assert time.monotonic() - started < 30", True),
        ("assert 0.5 < seconds < 1.5  # three waves", True),
        ("assert expected <= elapsed < expected + 0.5", True),
        ("assert stats['busy_seconds'] < total", True),
        ("assert 10 > opened.seconds", True),
        ("t = time.perf_counter() - t0\nassert t <= 1", True),
        ("assert seconds >= 0.4", False),  # a lower bound: load only makes it longer
        ("assert time.monotonic() < deadline", False),  # a hang guard while polling
        ("assert stats['service_seconds'] == pytest.approx(1.2)", False),
        ("assert 0 < spent <= 60_000", False),  # tokens
        ("assert before <= row.ended <= time.time()", False),  # ordering of timestamps
        ("assert earlier.ended <= later.started", False),
    ],
)
def test_the_wall_clock_rule_sees_upper_bounds_and_nothing_else(code: str, flagged: bool) -> None:
    assert bool(list(upper_bounds_on_time(code))) == flagged


def test_no_test_asserts_an_upper_bound_on_wall_clock_time() -> None:
    found = [
        f"{path.relative_to(TESTS)}:{line}"
        for path in SOURCES
        for line in upper_bounds_on_time(source_of(path))
    ]
    assert found == [], (
        "these asserts bound a wall-clock duration from above, which fails on a loaded "
        "machine for no defect: test the behaviour (a virtual clock, recorded events, the "
        f"server's in-flight count) and leave speed to benchmarks/: {found}"
    )


# --- absolute paths -----------------------------------------------------------------------

# Paths of one machine: a test finds data relative to the repository (conftest.ROOT,
# conftest.shared_dir()) or in tmp_path. System paths (/dev/null, /proc, /dev/shm) and URL
# paths (/v1/completions) are fine.
MACHINE_PATH = re.compile(r"^/(work|tmp|home|root|Users|mnt|srv|opt|data|shared|var)(/|$)")
# Strings that look like such paths but are never opened: a name recorded by another machine.
NOT_OPENED = {
    ("test_model_identity.py", "/home/user/models/tiny-base.Q4_0.gguf"),  # an old run's model
}


def machine_paths(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(source_of(path))
    inner = {  # the parts of f-strings after the first: they do not start the string
        id(part)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for part in node.values[1:]
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inner:
            text = node.value
            if MACHINE_PATH.match(text) and (path.name, text) not in NOT_OPENED:
                yield node.lineno, text


def test_no_test_reads_a_path_of_one_machine() -> None:
    found = [
        f"{path.relative_to(TESTS)}:{line}: {text}"
        for path in SOURCES
        for line, text in machine_paths(path)
    ]
    assert found == [], (
        "absolute paths hold on one machine only: use tmp_path, conftest.ROOT or "
        f"conftest.shared_dir() (../shared): {found}"
    )


def test_the_path_rule_sees_machine_paths_and_not_urls(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        'A = Path("/work/shared/data/seed_tasks.jsonl")\n'
        'B = f"/tmp/{name}/run"\n'
        'C = "/v1/chat/completions"\n'
        'D = open("/dev/null")\n'
        'E = f"{ROOT}/tmp/x"\n'
        'F = Path("/proc/self/status")\n',
        encoding="utf-8",
    )
    assert [line for line, _ in machine_paths(sample)] == [1, 2]


# --- differential tests -------------------------------------------------------------------

# `store_snapshot(a) == store_snapshot(b)`, `quality_snapshot(x) == expected`, ...: equal when
# both are empty too. conftest.assert_same_nonempty compares and checks both hold records.
BARE_COMPARISON = re.compile(
    r"\b(store|records|quality)_snapshot\([^()]*\)(\[[^\]]*\])?\s*[!=]=|"
    r"[!=]=\s*(store|records|quality)_snapshot\("
)


def test_differential_tests_check_that_both_sides_hold_records() -> None:
    found = [
        f"{path.relative_to(TESTS)}:{number}: {line.strip()}"
        for path in SOURCES
        for number, line in enumerate(source_of(path).splitlines(), 1)
        if BARE_COMPARISON.search(line)
    ]
    assert found == [], (
        "compare snapshots with conftest.assert_same_nonempty(found, expected, tables), "
        f"which also fails when either side is empty: {found}"
    )


def test_the_snapshot_rule_sees_bare_comparisons() -> None:
    flagged = [
        "assert store_snapshot(a) == store_snapshot(b)",
        "assert records_snapshot(out) == before",
        'assert store_snapshot(x)["labels"] == store_snapshot(y)["labels"]',
        "assert found == quality_snapshot(reference)",
    ]
    fine = [
        "assert_same_nonempty(store_snapshot(a), store_snapshot(b))",
        "before = store_snapshot(out)",
        'assert len(store_snapshot(out)["instructions"]) == 20',
    ]
    assert all(BARE_COMPARISON.search(line) for line in flagged)
    assert not any(BARE_COMPARISON.search(line) for line in fine)
