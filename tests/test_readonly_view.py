"""Reading a run takes no lock and writes nothing: `export`, `--estimate` and the Python
API's readers work while another process generates into the same run."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import cli

import selfinstruct
from selfinstruct.testing.openai_server import MockOpenAIServer


def lock_held(run: Path) -> bool:
    fd = os.open(run / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_export_and_estimate_while_another_process_generates(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with MockOpenAIServer(latency=0.3) as server:
        common = [
            "--out",
            str(run),
            "--backend",
            "openai",
            "--base-url",
            server.base_url,
            "--model",
            "fake",
            "--concurrency",
            "4",
            "-q",
        ]
        cli("run", *common, "--num-instructions", "8")
        before = (run / "run.json").read_bytes()
        writer = subprocess.Popen(
            [sys.executable, "-m", "selfinstruct", "run", *common, "--num-instructions", "60"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not (lock_held(run) and (run / "run.json").read_bytes() != before):
                assert writer.poll() is None, writer.communicate()
                assert time.monotonic() < deadline, "the writer never took the lock"
                time.sleep(0.05)
            exported = cli(
                "export",
                "--run",
                str(run),
                "--format",
                "alpaca",
                "--out",
                str(tmp_path / "alpaca.json"),
                "-q",
            )
            estimated = cli("run", *common, "--num-instructions", "60", "--estimate")
            count = len(selfinstruct.Run.open(run).instructions())
            still_writing = writer.poll() is None and lock_held(run)
        finally:
            _, err = writer.communicate(timeout=120)
    assert still_writing, "the writer finished before the readers ran; slow it down"
    assert exported.stdout.startswith("wrote ")
    assert "bootstrap" in estimated.stdout and "total" in estimated.stdout
    assert count >= 8
    assert writer.returncode == 0, err
