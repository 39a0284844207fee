"""The report's verb-noun parse made while a stream of stages runs, instead of at its end.

Loading the parser and parsing thousands of instructions cost seconds at the end of a run,
while during it the client mostly waits for the server. So while a stream runs, a process of
its own (`python -m selfinstruct.report.parse_worker`, on the machine's other core: the
client's event loop keeps its own) reads the instructions the run has committed from the
store (read-only; the store's WAL lets it read beside the writer) and parses them as they
come. Stages that run one after another (a local engine) have it too: it parses on the other
core while they work. Before the stage that writes the dataset, `finish` tells it to parse what
is left, and keeps its pairs in the store (`store.parses`), so the report parses nothing and
the parser is never loaded in the run's own process. Whatever goes wrong with the helper
(no parser installed, a crash) costs nothing but the time saved: the report parses what is
missing, as it always does.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from selfinstruct.analysis import verbs
from selfinstruct.analysis.verbs import Pair
from selfinstruct.store.run_store import DB_NAME, RunStore

FINISH_SECONDS = 120.0  # the longest wait for the helper's last parses
# Fewer instructions to parse than this: the report parses them at the end in well under a
# second once the parser is loaded, and a short run ends before a helper has loaded it.
MIN_INSTRUCTIONS = 100
STOP = "stop\n"  # the helper's cue to parse what is left and exit
# The helper's pairs go to a hidden file in the run directory, removed when the helper is done
# (or, after a kill -9 of the run and its helper, by the next run that starts one).
PREFIX = ".selfinstruct-parses-"


class ParseAhead:
    """A helper process parsing the run's instructions as they are committed."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.parser = verbs.parser_id()
        self.proc: subprocess.Popen[str] | None = None
        for stale in store.run_dir.glob(f"{PREFIX}*"):  # a killed run's helper's (the run's
            stale.unlink(missing_ok=True)  # lock is ours: no other helper is running)
        descriptor, name = tempfile.mkstemp(prefix=PREFIX, suffix=".jsonl", dir=store.run_dir)
        os.close(descriptor)
        self.out = Path(name)
        command = [sys.executable, "-m", "selfinstruct.report.parse_worker"]
        command += [str(store.run_dir / DB_NAME), str(self.out)]
        with contextlib.suppress(OSError):
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )

    @classmethod
    def start(cls, store: RunStore, target: int) -> ParseAhead | None:
        """A helper for a run of `target` instructions, or None when there is no parser to
        run or too little to parse (MIN_INSTRUCTIONS)."""
        parser = verbs.parser_id()
        if parser is None:
            return None
        todo = target - len(store.parses.of_parser(parser))
        return cls(store) if todo >= MIN_INSTRUCTIONS else None

    def finish(self) -> int:
        """Let the helper parse what is left, keep its pairs; returns how many were kept. A
        helper still loading its parser is waited for too: parsing here would take as long
        and load the parser, hundreds of MB, into the process that then builds the report."""
        proc = self.proc
        if proc is None or proc.stdin is None:
            return 0
        try:
            proc.stdin.write(STOP)
            proc.stdin.close()
            proc.wait(timeout=FINISH_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            self.close()
            return 0
        return self._keep(self._read()) if proc.returncode == 0 else 0

    def _read(self) -> dict[int, Pair | None]:
        found: dict[int, Pair | None] = {}
        with contextlib.suppress(OSError):
            for line in self.out.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    item = json.loads(line)
                    verb, noun = item["verb"], item["noun"]
                    found[int(item["id"])] = (verb, noun) if verb is not None else None
        return found

    def _keep(self, pairs: dict[int, Pair | None]) -> int:
        """Store the pairs not kept yet (the helper read them from this run's instructions,
        which are never removed)."""
        if self.parser is None or not pairs or self.store.readonly:
            return 0
        kept = self.store.parses.of_parser(self.parser)
        new = {i: pair for i, pair in pairs.items() if i not in kept}
        with self.store.transaction():
            self.store.parses.put(self.parser, new)
        return len(new)

    def close(self) -> None:
        """Stop the helper if it still runs, and remove its file."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            self.out.unlink()
