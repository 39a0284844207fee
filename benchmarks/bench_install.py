"""What installing costs: the embedded engine's build from source, and the disk the `train`
extra adds.

    python -m benchmarks.bench_install [--no-build] [--json OUT]

- The build: `pip wheel` of the llama-cpp-python version the `embedded` extra pins, from its
  source, without pip's cache (which is neither read nor written: the machine's cache is
  left as it is), with the Makefile's portable CMAKE_ARGS; wall time.
- The `train` extra: the installed size of every distribution `selfinstruct[train]` brings
  beyond what `selfinstruct[embedded,report]` (the demo's install) already has, read from
  this environment's installed files."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from benchmarks.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]


def build_minutes() -> float:
    sys.path.insert(0, str(ROOT / "scripts"))
    from install_engine import pinned  # the requirement the embedded extra names

    env = {**os.environ, "CMAKE_ARGS": "-DGGML_NATIVE=OFF"}
    with tempfile.TemporaryDirectory(prefix="engine-build-") as tmp:
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-cache-dir"]
        command += ["--no-deps", "--no-binary", "llama-cpp-python", pinned(), "-w", tmp]
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True)
        return (time.perf_counter() - started) / 60


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def closure(extras: set[str]) -> set[str]:
    """The installed distributions `selfinstruct[extras]` needs, by normalized name."""
    found: set[str] = set()
    todo = [("selfinstruct", frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        key = _name(dist.metadata["Name"])
        if key in found and not wanted:
            continue
        found.add(key)
        for text in dist.requires or []:
            req = Requirement(text)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            applies = req.marker is None or any(req.marker.evaluate(e) for e in envs)
            if applies and (_name(req.name) not in found or req.extras):
                todo.append((req.name, frozenset(req.extras)))
    return found


def size_mb(names: set[str]) -> float:
    total = 0
    for dist in metadata.distributions():
        if _name(dist.metadata["Name"]) in names:
            for file in dist.files or []:
                path = Path(str(dist.locate_file(file)))
                if path.is_file():
                    total += path.stat().st_size
    return total / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-build", action="store_true", help="only the sizes")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    train = closure({"embedded", "report", "train"}) - closure({"embedded", "report"})
    report = {
        "machine": {"cpu": cpu_model(), "cpus": len(os.sched_getaffinity(0))},
        "train_extra_gb": size_mb(train) / 1024,
        "train_distributions": sorted(train),
    }
    print(f"the train extra adds {report['train_extra_gb']:.2f} GB ({len(train)} distributions)")
    if not args.no_build:
        report["engine_build_minutes"] = build_minutes()
        print(f"llama-cpp-python from source: {report['engine_build_minutes']:.1f} min")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
