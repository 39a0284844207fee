"""Third-party backends: found through the `selfinstruct.backends` entry-point group, with
their own settings section, usable anywhere a built-in backend is. The example plug-in
(tests/plugin_backend) is put on the path for these tests only, its distribution found there
as an installed one would be: nothing is installed into the user's environment."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from conftest import cli, cli_process

from selfinstruct.errors import BackendError
from selfinstruct.llm.base import LLM
from selfinstruct.llm.choice import ModelChoice
from selfinstruct.llm.registry import (
    BUILT_IN,
    ENTRY_POINT_GROUP,
    _targets,
    backend_class,
    known_backends,
)

PLUGIN = Path(__file__).parent / "plugin_backend" / "src"


@pytest.fixture(autouse=True)
def _plugin_on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The example plug-in, findable for the length of one test (it is not installed)."""
    monkeypatch.syspath_prepend(str(PLUGIN))
    forget_backends()
    names = [entry.name for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    assert "example" in names, f"no example plug-in's distribution in {PLUGIN}"
    yield
    forget_backends()  # the next lookup, the plug-in gone from the path, finds none


def forget_backends() -> None:
    importlib.invalidate_caches()
    _targets.cache_clear()
    backend_class.cache_clear()


def test_plugin_is_found_by_name() -> None:
    assert "example" in known_backends()
    backend = backend_class("example")
    assert backend.name == "example"
    assert backend.__module__ == "selfinstruct_plugin_example"


def test_unknown_backend_lists_plugins() -> None:
    with pytest.raises(BackendError, match=r"known: .*example"):
        backend_class("nonexistent")


def test_a_run_on_a_plugin_backend_uses_its_settings(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cli(
        "run",
        "--out",
        str(out),
        "--backend",
        "example",
        "--num-instructions",
        "8",
        "-q",
        "--set",
        'example.tag=" [tagged]"',
    )
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert record["model"] == {"backend": "example", "model": "example-1", "tag": " [tagged]"}
    assert record["config"]["example"] == {"tag": " [tagged]", "concurrency": 1}
    assert record["versions"]["selfinstruct-plugin-example"] == "0.1.0"
    raw = (out / "machine_generated_instances.jsonl").read_text(encoding="utf-8")
    assert "[tagged]" in raw  # the plug-in's settings reached the answers


def test_plugin_settings_are_checked(tmp_path: Path) -> None:
    result = cli(
        "run",
        "--out",
        str(tmp_path / "run"),
        "--backend",
        "example",
        "--set",
        "example.concurrency=0",
        check=False,
    )
    assert result.returncode == 2
    assert "field 'example.concurrency': must be >= 1" in result.stderr
    assert not (tmp_path / "run").exists()


def test_plugin_settings_are_part_of_the_fingerprint(tmp_path: Path) -> None:
    out = str(tmp_path / "run")
    cli("bootstrap", "--out", out, "--backend", "example", "--num-instructions", "4", "-q")
    result = cli(
        "bootstrap", "--out", out, "--backend", "example", "--set", "example.tag=x", check=False
    )
    assert result.returncode == 2
    assert "example.tag: '' -> 'x'" in result.stderr


class ChatOnly(LLM):
    name = "chat-only"
    supports = frozenset({"chat"})


def test_what_a_backend_supports_is_checked_before_it_is_used() -> None:
    choice = ModelChoice(ChatOnly, "m")
    assert choice.preflight("chat") is None
    with pytest.raises(BackendError, match=r"does not support completion \(--prompt-style\)"):
        choice.preflight("completion")
    with pytest.raises(BackendError, match=r"does not support batch .*supports: chat"):
        choice.require("batch", "--batch-out")


def test_batch_files_need_a_backend_that_takes_them(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli("bootstrap", "--out", str(run), "--backend", "example", "--num-instructions", "3", "-q")
    written = cli("classify", "--out", str(run), "--batch-out", str(tmp_path / "b.jsonl"))
    assert written.stdout.startswith("wrote 3 classify requests")
    assert "batch" not in backend_class("embedded").supports
    assert "batch" in backend_class("openai").supports


@pytest.mark.slow  # a process of its own
def test_the_users_commands_never_offer_the_example_plugin() -> None:
    """The plug-in is on this process's path only: a command started as a user starts one (a
    new interpreter from the environment `make test` installed) finds no such distribution
    and offers the built-in backends."""
    shown = cli_process("run", "--help").stdout
    choices = re.search(r"--backend \[([a-z|]+)\]", shown)
    assert choices is not None, shown
    assert choices.group(1).split("|") == sorted(BUILT_IN)
    probe = (
        "from importlib import metadata; "
        f"print([e.name for e in metadata.entry_points(group={ENTRY_POINT_GROUP!r})])"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert found.stdout.strip() == "[]", found.stderr
