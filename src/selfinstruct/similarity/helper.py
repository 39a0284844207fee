"""A helper process's program: keep a copy of the pool's items, and score the chunks of each
block it is told of (see processes.py for the protocol). Run as
`python -m selfinstruct.similarity.helper R W`, R and W the pipe ends it reads and writes."""

from __future__ import annotations

import signal
import sys
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

from selfinstruct.similarity.processes import (
    READY,
    SPIN_SECONDS,
    Chunks,
    Layout,
    attach,
    spin,
    walk,
)
from selfinstruct.similarity.rouge import RougePool


def serve(receive: Connection, send: Connection) -> None:
    """The helper's loop: keep the pool's items, walk each block's chunks."""
    pool = RougePool(workers=1)
    send.send(READY)
    memory: SharedMemory | None = None
    while True:
        try:
            spin(receive, SPIN_SECONDS)
            message = receive.recv()
        except (EOFError, OSError):
            return
        if message[0] == "items":
            for encoded in message[1]:
                pool.add("", encoded)
            continue
        _, encoded, start, name, shape, chunks = message
        if memory is None or memory.name != name:
            if memory is not None:
                memory.close()
            memory = attach(name)
        _walk_block(pool, (encoded, start), Layout(memory.buf, shape, len(chunks)), chunks)
        try:
            send.send_bytes(b"")
        except OSError:  # the parent stopped listening (it dropped the helpers): leave
            return


def _walk_block(pool: Any, block: tuple[list[str], int], layout: Layout, chunks: Chunks) -> None:
    encoded, start = block
    scorer = pool.scorer(encoded, start)

    def score(first: int, last: int) -> None:
        pool.score_chunk(encoded, start, scorer, first, last, layout.scores[:, first:last])

    walk(chunks, layout, score)


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    receive = Connection(int(argv[0]), writable=False)
    send = Connection(int(argv[1]), readable=False)
    serve(receive, send)


if __name__ == "__main__":
    main(sys.argv[1:])
