"""llama.cpp's own log, kept off the terminal.

llama-cpp-python prints llama.cpp's log lines to stderr by level, but with a table of levels
older than the library it ships: llama.cpp's warnings ("n_ctx_seq (16384) > n_ctx_train",
"llama_kv_cache_iswa: using full-size SWA cache") arrive as its error level and are printed
even with `verbose=False`. `install()` replaces that callback with one that prints nothing:
every line goes to the Python logger `selfinstruct.llama_cpp` (DEBUG for everything, so
`logging` can show it when asked) and to a short memory of recent lines, which error
messages quote when llama.cpp refuses a model.
"""

from __future__ import annotations

import ctypes
import logging
from collections import deque
from typing import Any

logger = logging.getLogger("selfinstruct.llama_cpp")
CONTINUATION = 5  # ggml_log_level GGML_LOG_LEVEL_CONT: the text continues the previous line
RECENT_LINES = 40

_recent: deque[str] = deque(maxlen=RECENT_LINES)
_partial: list[str] = []
_callback: Any = None  # the ctypes callback; kept alive for as long as llama.cpp may call it


def _receive(level: int, text: bytes | None, _user_data: Any) -> None:
    """Collect text into lines; log each complete line."""
    piece = (text or b"").decode("utf-8", errors="replace")
    if level != CONTINUATION and _partial:
        _emit("".join(_partial))
        _partial.clear()
    _partial.append(piece)
    joined = "".join(_partial)
    if "\n" in joined:
        *lines, rest = joined.split("\n")
        for line in lines:
            _emit(line)
        _partial[:] = [rest] if rest else []


def _emit(line: str) -> None:
    if line.strip():
        _recent.append(line)
        logger.debug("%s", line)


def install() -> None:
    """Route llama.cpp's log through `_receive` (once per process)."""
    global _callback
    if _callback is not None:
        return
    import llama_cpp

    _callback = llama_cpp.llama_log_callback(_receive)
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


def recent(lines: int = 8) -> str:
    """The last few log lines, for an error message."""
    return "\n".join(list(_recent)[-lines:])
