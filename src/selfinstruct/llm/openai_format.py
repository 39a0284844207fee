"""The OpenAI wire format: request bodies and response parsing, shared by the live client and
batch files (OpenAI Batch API and `vllm run-batch` read and write the same shapes)."""

from __future__ import annotations

from typing import Any

from selfinstruct.llm.base import Completion, Request

COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"


class MalformedResponse(ValueError):
    """A body that is not a usable completion (truncated JSON, missing fields...)."""


def endpoint(request: Request) -> str:
    return CHAT if request.is_chat else COMPLETIONS


def request_body(request: Request, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "presence_penalty": request.presence_penalty,
        "frequency_penalty": request.frequency_penalty,
    }
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    if request.messages is not None:
        body["messages"] = [{"role": role, "content": text} for role, text in request.messages]
    else:
        body["prompt"] = request.prompt
    return body


def parse_body(body: Any, chat: bool) -> Completion:
    """A Completion from a response body, or MalformedResponse."""
    try:
        choice = body["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
        finish = choice.get("finish_reason") or "stop"
        usage = body.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedResponse(f"unexpected response shape: {exc!r}") from exc
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise MalformedResponse("the completion text is not a string")
    return Completion(text=text, finish_reason=str(finish), prompt_tokens=prompt_tokens,
                      completion_tokens=completion_tokens)
