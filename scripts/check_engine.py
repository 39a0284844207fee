"""Smoke test of the embedded engine: load the packaged model and generate a few tokens.
Run in a subprocess so a crashing native build shows as a non-zero exit."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
from selfinstruct.llm.model_file import packaged_model_path
from llama_cpp import Llama
llm = Llama(model_path=str(packaged_model_path()), n_ctx=256, verbose=False)
out = llm.create_completion("1. Name a color.\\n2.", max_tokens=4, temperature=0)
assert out["choices"][0]["text"] is not None
"""


def main() -> int:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    if result.returncode != 0:
        print(
            f"embedded engine check failed (exit {result.returncode}): {result.stderr[-500:]}",
            file=sys.stderr,
        )
        return 1
    print("embedded engine: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
