"""What the browser tests share: system Chromium driven by Playwright (no browser is ever
downloaded), and polling a page from Python (the pages' Content-Security-Policy forbids the
eval that Playwright's in-page polling uses)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None
)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (the test skips, saying why, when Chromium is missing: it is no
    Python package; Playwright is, in the test extra)."""
    from playwright import sync_api as playwright_api  # the test extra installs it

    if CHROMIUM is None:
        pytest.skip("Chromium is not installed")
    with playwright_api.sync_playwright() as p:
        found = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield found
        finally:
            found.close()


def wait_until(page: Any, expression: str, timeout: float = 60.0) -> None:
    """Poll a JavaScript expression until it is true."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.02)
