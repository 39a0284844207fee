"""Loss and progress while training: a line per logged step on stderr (step, loss, learning
rate, rate, ETA) and the same numbers in training_log.jsonl."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


class LossLog:
    def __init__(self, path: Path, quiet: bool = False) -> None:
        self.path = path
        self.quiet = quiet
        self.steps = 0
        self.losses: list[float] = []
        self._started = time.monotonic()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("", encoding="utf-8")

    def record(self, step: int, total: int, logs: dict[str, Any]) -> None:
        if "loss" not in logs:
            return
        loss = float(logs["loss"])
        self.steps = step
        self.losses.append(loss)
        elapsed = time.monotonic() - self._started
        rate = step / elapsed if elapsed > 0 else 0.0
        eta = (total - step) / rate if rate > 0 and total > 0 else 0.0
        entry = {
            "step": step,
            "total_steps": total,
            "loss": loss,
            "learning_rate": logs.get("learning_rate"),
            "epoch": logs.get("epoch"),
            "seconds": round(elapsed, 2),
        }
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        if not self.quiet:
            print(
                f"[finetune] step {step}/{total} loss {loss:.4f} lr "
                f"{logs.get('learning_rate', 0):.2e} epoch {logs.get('epoch', 0):.2f} "
                f"({rate:.2f} steps/s, ETA {eta:.0f}s)",
                file=sys.stderr,
                flush=True,
            )

    @property
    def first_loss(self) -> float | None:
        """Mean loss over the first tenth of the logged steps (single steps are noisy)."""
        return self._mean(self.losses[: self._tenth()])

    @property
    def last_loss(self) -> float | None:
        """Mean loss over the last tenth of the logged steps."""
        return self._mean(self.losses[-self._tenth() :])

    def _tenth(self) -> int:
        return max(1, len(self.losses) // 10)

    @staticmethod
    def _mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    def callback(self) -> Any:
        from transformers import TrainerCallback

        log = self

        class _Callback(TrainerCallback):  # type: ignore[misc]
            def on_log(
                self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
            ) -> None:
                log.record(state.global_step, state.max_steps, logs or {})

        return _Callback()
