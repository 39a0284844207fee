"""A backend, the model asked of it and its settings: what a run or a command uses,
described without loading the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from selfinstruct.errors import BackendError
from selfinstruct.llm.base import LLM
from selfinstruct.llm.registry import backend_class


@dataclass(frozen=True)
class ModelChoice:
    backend: type[LLM]
    model: str = ""
    settings: Any = None  # the backend's settings section (None when it has none)

    @classmethod
    def of(cls, name: str, model: str, sections: dict[str, Any]) -> ModelChoice:
        """The backend named `name`, with its section out of a config's sections."""
        backend = backend_class(name)
        settings = sections.get(name)
        if settings is None and backend.Settings is not None:
            settings = backend.Settings()
        return cls(backend, model, settings)

    @property
    def name(self) -> str:
        return self.backend.name

    def model_name(self) -> str:
        return self.backend.model_name(self.model, self.settings)

    def label(self) -> str:
        return self.backend.model_label(self.model, self.settings)

    def cache_identity(self) -> str:
        return self.backend.cache_identity(self.model, self.settings)

    def fingerprint(self) -> dict[str, Any]:
        return self.backend.fingerprint(self.model, self.settings)

    def describe(self, style: str) -> dict[str, Any]:
        return self.backend.describe(self.model, self.settings, style)

    def slots(self) -> int:
        """The most requests the backend keeps in flight with these settings."""
        return self.backend.slots(self.settings)

    def preflight(
        self, style: str, known: dict[str, Any] | None = None, *, identify: bool = True
    ) -> dict[str, Any] | None:
        """The backend takes this prompt style, and its own checks pass (see LLM.preflight)."""
        self.require(style, "--prompt-style")
        return self.backend.preflight(self.model, self.settings, style, known, identify)

    def require(self, feature: str, asked_by: str) -> None:
        """BackendError unless the backend supports `feature` (completion, chat, batch)."""
        if feature not in self.backend.supports:
            supported = ", ".join(sorted(self.backend.supports))
            raise BackendError(
                f"the {self.name} backend does not support {feature} ({asked_by}); "
                f"it supports: {supported}"
            )

    def create(self) -> LLM:
        return self.backend.create(self.model, self.settings)
