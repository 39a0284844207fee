"""Install the embedded engine, llama-cpp-python at the version the `embedded` extra pins, into
this interpreter's environment (`make install` runs it first, then installs the rest quietly).

PyPI has it as source only: pip builds it, which takes minutes. This says so before the build
starts (unless pip holds a wheel it built before) and shows the build's progress, a line per
tenth of it; pip's whole output goes to a log file beside the interpreter's environment,
printed in part when the build fails (ENGINE_BUILD_LOG names another file). Make's
CMAKE_ARGS (a portable build) reach the build.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "llama-cpp-python"
BUILD_TIME = "a few minutes on 2 cores"
LOG = Path(os.environ.get("ENGINE_BUILD_LOG", Path(sys.prefix) / "llama-cpp-python-build.log"))
# A build step: ninja's "[12/193] ..." or make's "[ 37%] ...", at the start of a line.
STEP = re.compile(r"^\s*\[\s*(?:(\d+)/(\d+)|(\d+)%)\]")
# pip's own lines worth showing: its top-level ones and the start and end of each phase.
PHASE = re.compile(r"^\s+\S.*: (started|finished with status '\w+')$")


def pinned() -> str:
    """The requirement the `embedded` extra names, e.g. "llama-cpp-python==0.3.36"."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for requirement in project["optional-dependencies"]["embedded"]:
        if requirement.startswith(f"{DISTRIBUTION}=="):
            return str(requirement)
    raise SystemExit(f"pyproject.toml's embedded extra pins no {DISTRIBUTION}")


def version_of(requirement: str) -> str:
    return requirement.partition("==")[2]


def installed() -> str | None:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


def wheel_cached(version: str) -> bool:
    """Whether pip's cache holds a wheel it built of this version (then pip reuses it)."""
    found = subprocess.run(
        [sys.executable, "-m", "pip", "cache", "list", "llama_cpp_python", "--format=abspath"],
        capture_output=True,
        text=True,
    )
    return found.returncode == 0 and f"llama_cpp_python-{version}-" in found.stdout


def announcement(requirement: str, *, cached: bool) -> str:
    """What to say before pip starts."""
    if cached:
        return (
            f"{requirement}: pip holds a wheel it built before, so no build is expected "
            f"(without it, pip builds it from source: {BUILD_TIME})"
        )
    return (
        f"{requirement} is built from source by pip: this takes minutes ({BUILD_TIME}); "
        f"its progress follows (the whole log: {LOG})"
    )


def progress(lines: Iterable[str], started: float | None = None) -> Iterator[str]:
    """The lines of pip's verbose output worth showing: pip's own (not indented), the start
    and end of each phase, and the build's progress once per tenth of its steps."""
    started = time.monotonic() if started is None else started
    shown_tenth = -1
    for line in lines:
        line = line.rstrip("\n")
        step = STEP.match(line)
        if step:
            done, total, percent = step.groups()
            share = int(percent) if percent else int(done) * 100 // max(int(total), 1)
            if share // 10 > shown_tenth:
                shown_tenth = share // 10
                minutes, seconds = divmod(int(time.monotonic() - started), 60)
                counted = f" ({done}/{total} steps)" if total else ""
                yield f"  building: {share}%{counted}, {minutes}m{seconds:02d}s so far"
        elif line and (not line[0].isspace() or PHASE.match(line)):
            yield line


def pip_install(*arguments: str) -> int:
    """`pip install -v ARGUMENTS`, its output in the log and in short on the terminal; on a
    failure the log's last lines are printed too."""
    command = [sys.executable, "-m", "pip", "install", "-v", *arguments]
    with LOG.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        for shown in progress(logged(process.stdout or [], log)):
            print(shown, flush=True)
        code = process.wait()
    if code != 0:
        tail = LOG.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        print("\n".join(["pip failed; the end of its log:", *tail, f"(all of it: {LOG})"]))
    return code


def logged(lines: Iterable[str], log: TextIO) -> Iterator[str]:
    """The lines, each written to the log as it passes."""
    for line in lines:
        log.write(line)
        yield line


def main() -> int:
    requirement = pinned()
    version = version_of(requirement)
    if installed() == version:
        return 0
    print(announcement(requirement, cached=wheel_cached(version)), flush=True)
    return pip_install(requirement)


if __name__ == "__main__":
    sys.exit(main())
