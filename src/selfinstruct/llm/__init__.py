"""Language model backends behind one small interface."""

from selfinstruct.llm.base import LLM, Completion, Request
from selfinstruct.llm.registry import create_backend, known_backends

__all__ = ["LLM", "Completion", "Request", "create_backend", "known_backends"]
