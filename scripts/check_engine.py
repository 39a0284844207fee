"""Smoke test of the embedded engine: load the packaged model and generate a few tokens.
Run in a subprocess so a crashing native build shows as a non-zero exit.

With --rebuild (what `make install` runs), a failed check is followed by one rebuild of
llama-cpp-python from source without pip's cache (a wheel built for another CPU can crash
here), said before it starts, and a second check. Nothing is printed about a rebuild that
does not happen."""

from __future__ import annotations

import subprocess
import sys

from install_engine import BUILD_TIME, LOG, pinned, pip_install

PROBE = """
from selfinstruct.llm.model_file import packaged_model_path
from llama_cpp import Llama
llm = Llama(model_path=str(packaged_model_path()), n_ctx=256, verbose=False)
out = llm.create_completion("1. Name a color.\\n2.", max_tokens=4, temperature=0)
assert out["choices"][0]["text"] is not None
"""


def check() -> int:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    if result.returncode != 0:
        print(
            f"embedded engine check failed (exit {result.returncode}): {result.stderr[-500:]}",
            file=sys.stderr,
        )
        return 1
    print("embedded engine: ok")
    return 0


def rebuild() -> int:
    """Build llama-cpp-python again from source, without the wheel pip cached."""
    requirement = pinned()
    print(
        f"llama-cpp-python failed its smoke test; rebuilding {requirement} from source without "
        f"pip's cache: this takes minutes ({BUILD_TIME}); its progress follows (the whole "
        f"log: {LOG})",
        flush=True,
    )
    subprocess.run([sys.executable, "-m", "pip", "cache", "remove", "llama_cpp_python"])
    return pip_install("--force-reinstall", "--no-deps", "--no-cache-dir", requirement)


def main(arguments: list[str]) -> int:
    if check() == 0:
        return 0
    if "--rebuild" not in arguments:
        return 1
    return rebuild() or check()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
