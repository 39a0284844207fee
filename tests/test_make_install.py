"""What `make install` says about the embedded engine (scripts/install_engine.py,
scripts/check_engine.py): before a source build, that it takes minutes, then its progress;
about a rebuild, only when the smoke test fails. pip and llama_cpp are stand-ins here (a
`pip` and a `llama_cpp` module ahead of the real ones on PYTHONPATH), so nothing is built."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
from conftest import ROOT

SCRIPTS = ROOT / "scripts"

FAKE_PIP = """
import os, sys
with open(os.environ["FAKE_PIP_CALLS"], "a") as calls:
    calls.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "install":
    print("Collecting llama-cpp-python==0.3.36")
    print("  Downloading llama_cpp_python-0.3.36.tar.gz (76.6 MB)")
    print("  Building wheel for llama-cpp-python (pyproject.toml): started")
    for step in range(1, 41):
        print(f"  [{step}/40] /usr/bin/g++ -O3 -c vendor/llama.cpp/src/part{step}.cpp")
    print("  Building wheel for llama-cpp-python (pyproject.toml): finished with status 'done'")
    print("Successfully installed llama-cpp-python-0.3.36")
    sys.exit(int(os.environ.get("FAKE_PIP_EXIT", "0")))
"""

CRASHING_ENGINE = "raise ImportError('illegal instruction (a wheel built for another CPU)')"
WORKING_ENGINE = """
class Llama:
    def __init__(self, **settings):
        pass

    def create_completion(self, prompt, **settings):
        return {"choices": [{"text": " Blue."}]}
"""


def load_install_engine() -> ModuleType:
    spec = importlib.util.spec_from_file_location("install_engine", SCRIPTS / "install_engine.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory for the stand-in modules, first on the PYTHONPATH of every child process;
    pip's calls are written to FAKE_PIP_CALLS, the build log to ENGINE_BUILD_LOG."""
    (tmp_path / "pip").mkdir()
    (tmp_path / "pip" / "__init__.py").write_text("")
    (tmp_path / "pip" / "__main__.py").write_text(FAKE_PIP)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT / "src")]))
    monkeypatch.setenv("FAKE_PIP_CALLS", str(tmp_path / "calls.txt"))
    monkeypatch.setenv("ENGINE_BUILD_LOG", str(tmp_path / "build.log"))
    return tmp_path


def engine(stand_ins: Path, source: str) -> None:
    """A stand-in llama_cpp (with the module the packaged model's package imports)."""
    (stand_ins / "llama_cpp").mkdir(exist_ok=True)
    (stand_ins / "llama_cpp" / "__init__.py").write_text(textwrap.dedent(source))
    (stand_ins / "llama_cpp" / "_logger.py").write_text(
        "import logging\nlogger = logging.getLogger()\n"
    )


def pip_calls(stand_ins: Path) -> list[str]:
    calls = stand_ins / "calls.txt"
    return calls.read_text().splitlines() if calls.exists() else []


def check_engine(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "check_engine.py"), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow  # a process of its own
def test_make_lists_no_message_about_a_rebuild(tmp_path: Path) -> None:
    """`make -n` lists what install would run: no message about a rebuild is among it."""
    planned = subprocess.run(
        ["make", "-n", "install", f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "scripts/install_engine.py" in planned and "check_engine.py --rebuild" in planned
    assert "smoke test" not in planned and "rebuild" not in planned.replace("--rebuild", "")
    assert not [line for line in planned.splitlines() if line.startswith(("echo", "@"))]


@pytest.mark.slow  # a process of its own
def test_a_working_engine_is_checked_quietly(stand_ins: Path) -> None:
    engine(stand_ins, WORKING_ENGINE)
    result = check_engine("--rebuild")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "embedded engine: ok\n"
    assert pip_calls(stand_ins) == []


@pytest.mark.slow  # a process of its own
def test_a_crashing_engine_is_rebuilt_once_saying_so(stand_ins: Path) -> None:
    engine(stand_ins, CRASHING_ENGINE)
    result = check_engine("--rebuild")
    assert result.returncode == 1  # still crashing after the rebuild
    said = result.stdout.splitlines()
    assert said[0].startswith(
        "llama-cpp-python failed its smoke test; rebuilding llama-cpp-python==0.3.36 from "
        "source without pip's cache: this takes minutes (a few minutes on 2 cores)"
    )
    assert "  building: 50% (20/40 steps)" in result.stdout  # pip's progress, in short
    assert "g++" not in result.stdout  # the compiler's lines stay in the log
    assert "g++" in (stand_ins / "build.log").read_text()
    assert result.stderr.count("embedded engine check failed") == 2
    assert pip_calls(stand_ins) == [
        "cache remove llama_cpp_python",
        "install -v --force-reinstall --no-deps --no-cache-dir llama-cpp-python==0.3.36",
    ]


@pytest.mark.slow  # a process of its own
def test_without_rebuild_a_crashing_engine_only_fails(stand_ins: Path) -> None:
    engine(stand_ins, CRASHING_ENGINE)
    result = check_engine()
    assert (result.returncode, result.stdout, pip_calls(stand_ins)) == (1, "", [])


@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.slow  # a process of its own
def test_a_source_build_is_announced_before_it_starts(
    stand_ins: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    cached: bool,
) -> None:
    script = load_install_engine()
    monkeypatch.setattr(script, "installed", lambda: None)
    monkeypatch.setattr(script, "wheel_cached", lambda version: cached)
    monkeypatch.setattr(script, "LOG", stand_ins / "build.log")
    assert script.main() == 0
    first, *rest = capsys.readouterr().out.splitlines()
    if cached:
        assert first.startswith("llama-cpp-python==0.3.36: pip holds a wheel it built before")
    else:
        assert first.startswith(
            "llama-cpp-python==0.3.36 is built from source by pip: this takes minutes "
            "(a few minutes on 2 cores); its progress follows"
        )
    assert rest[0] == "Collecting llama-cpp-python==0.3.36"
    assert [line for line in rest if "building:" in line][-1].startswith("  building: 100%")
    assert rest[-1] == "Successfully installed llama-cpp-python-0.3.36"
    assert pip_calls(stand_ins) == ["install -v llama-cpp-python==0.3.36"]


@pytest.mark.slow  # a process of its own
def test_an_installed_engine_is_left_alone(stand_ins: Path) -> None:
    """The test environment has the pinned version: nothing is said, pip is not called."""
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "install_engine.py")], capture_output=True, text=True
    )
    assert (result.returncode, result.stdout, pip_calls(stand_ins)) == (0, "", [])


@pytest.mark.slow  # a process of its own
def test_a_failed_build_shows_the_end_of_its_log(
    stand_ins: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_PIP_EXIT", "1")
    script = load_install_engine()
    monkeypatch.setattr(script, "LOG", stand_ins / "build.log")
    assert script.pip_install("llama-cpp-python==0.3.36") == 1
    out = capsys.readouterr().out
    assert "pip failed; the end of its log:" in out
    assert "[40/40] /usr/bin/g++" in out  # the log's last lines, the compiler's included
