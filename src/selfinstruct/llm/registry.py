"""Backends by name: the built-in ones, and any package's through the `selfinstruct.backends`
entry-point group (name = "package.module:BackendClass", the class a subclass of `LLM`).

Modules are imported only when a backend is looked up, so a heavy engine is loaded only when
chosen. The core never names a backend: what a backend needs (its settings section, model
name, checks, identity) it says itself, as class attributes and methods of `LLM`.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib import metadata

from selfinstruct.config import Flag
from selfinstruct.errors import BackendError
from selfinstruct.llm.base import LLM

ENTRY_POINT_GROUP = "selfinstruct.backends"
BUILT_IN = {
    "embedded": "selfinstruct.llm.backends.embedded:EmbeddedLLM",
    "fake": "selfinstruct.llm.backends.fake:FakeLLM",
    "openai": "selfinstruct.llm.backends.openai:OpenAIBackend",
    "transformers": "selfinstruct.llm.backends.transformers:TransformersLLM",
}


@cache
def _targets() -> dict[str, str]:
    """Backend name -> "module:Class", built-ins first; a plug-in cannot replace one."""
    found = dict(BUILT_IN)
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    return found


def known_backends() -> list[str]:
    return sorted(_targets())


@cache
def backend_class(name: str) -> type[LLM]:
    """The backend class registered under `name` (BackendError for an unknown name or a
    plug-in that cannot be loaded)."""
    target = _targets().get(name)
    if target is None:
        raise BackendError(f"unknown backend '{name}' (known: {', '.join(known_backends())})")
    module_name, _, attribute = target.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise BackendError(f"backend '{name}' ({target}) cannot be loaded: {exc}") from exc
    if not (isinstance(found, type) and issubclass(found, LLM)):
        raise BackendError(
            f"backend '{name}' ({target}) is not a subclass of selfinstruct.llm.base.LLM"
        )
    if found.name != name:
        raise BackendError(f"backend '{name}' ({target}) calls itself '{found.name}'")
    return found


def backend_sections() -> dict[str, type]:
    """The settings section of each backend that has one, by backend name."""
    sections = {}
    for name in known_backends():
        try:
            settings = backend_class(name).Settings
        except BackendError:
            continue  # a broken plug-in is reported when it is chosen, not by every run
        if settings is not None:
            sections[name] = settings
    return sections


def backend_flags() -> list[Flag]:
    """The command-line flags of every backend that has some, by backend name."""
    found: list[Flag] = []
    for name in known_backends():
        try:
            found += backend_class(name).flags
        except BackendError:
            continue  # a broken plug-in is reported when it is chosen
    return found
