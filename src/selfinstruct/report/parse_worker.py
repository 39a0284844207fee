"""The parse-ahead helper's program (report/parse_ahead.py): parse a run's instructions as the
run commits them, and append each pair to a file as a JSON line. Run as
`python -m selfinstruct.report.parse_worker DB OUT`.

It reads the store read-only, a few hundred new instructions at a time, and waits a moment
when there are none. A line "stop" on its input means: parse what is left and exit; its input
closing without one means the run is gone (killed): it removes its file and exits."""

from __future__ import annotations

import json
import select
import sqlite3
import sys
import time
from pathlib import Path
from typing import TextIO

from selfinstruct.analysis import verbs

BATCH = 256  # instructions read and parsed at a time
WAIT_SECONDS = 0.5  # between looks when there is nothing new


def told(stream: TextIO) -> str | None:
    """What the run said on the helper's input, without waiting: "stop", "gone" (the input
    closed without a stop) or None."""
    readable, _, _ = select.select([stream], [], [], 0)
    if not readable:
        return None
    line = stream.readline()
    return "stop" if line.strip() == "stop" else "gone"


def new_rows(db: sqlite3.Connection, after: int) -> list[tuple[int, str]]:
    """Instructions committed after id `after`, in id order."""
    sql = "SELECT id, instruction FROM instructions WHERE id > ? ORDER BY id LIMIT ?"
    return db.execute(sql, (after, BATCH)).fetchall()


def parse_into(db_path: Path, out: Path, stream: TextIO) -> None:
    """The helper's loop, until told to stop (after a last pass) or the run is gone."""
    nlp = verbs.load_pipeline()
    if nlp is None:
        return
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    last, state = 0, None
    with out.open("a", encoding="utf-8") as sink:
        while state != "gone":
            rows = new_rows(db, last)
            if rows:
                pairs = verbs.parse_pairs([text for _, text in rows], nlp)
                for (row_id, _), pair in zip(rows, pairs, strict=True):
                    verb, noun = pair or (None, None)
                    sink.write(json.dumps({"id": row_id, "verb": verb, "noun": noun}) + "\n")
                sink.flush()
                last = rows[-1][0]
            elif state == "stop":
                return
            state = state or told(stream)
            if not rows and state is None:
                time.sleep(WAIT_SECONDS)
    out.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m selfinstruct.report.parse_worker DB OUT", file=sys.stderr)
        return 2
    parse_into(Path(argv[0]), Path(argv[1]), sys.stdin)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
