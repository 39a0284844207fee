"""The OpenAI wire format, both directions, defined once.

The live client (`llm/backends/openai.py`) and batch files (OpenAI Batch API, `vllm
run-batch`) turn a `Request` into a body and a response body into a `Completion`; the local
test server (`testing.openai_server`) does the opposite. Keeping both directions here means a
field added on one side cannot be forgotten on the other (tests/test_wire_format.py checks
the round trips).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from selfinstruct.llm.base import Completion, Messages, Request

COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"
DECODING_FLOATS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")


class MalformedResponse(ValueError):
    """A body that is not a usable completion (truncated JSON, missing fields...)."""


class BadRequest(ValueError):
    """A request body that is not a valid request; `param` names the offending field, as an
    OpenAI error body does."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


# ---------------------------------------------------------------------------------------------
# Request -> body (client side)


def endpoint(request: Request) -> str:
    return CHAT if request.is_chat else COMPLETIONS


def request_body(request: Request, model: str) -> dict[str, Any]:
    """The JSON body that asks `model` for `request` (every field that changes the answer)."""
    body: dict[str, Any] = {"model": model, "max_tokens": request.max_tokens}
    body.update({name: getattr(request, name) for name in DECODING_FLOATS})
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    if request.messages is not None:
        body["messages"] = [{"role": role, "content": text} for role, text in request.messages]
    else:
        body["prompt"] = request.prompt
    return body


def body_json(request: Request, body: dict[str, Any]) -> bytes:
    """The request's body (`request_body`) as the bytes `json.dumps(body).encode()` makes of
    it (what a client sends), with a completion prompt's text (the bulk of the body, and last
    in it) taken from the request's canonical JSON: the same text when the prompt is ASCII
    without DEL, the one character whose escaping depends on ensure_ascii. Each request's
    prompt is then encoded once, not twice."""
    prompt = request.field_json("prompt") if request.prompt is not None else ""
    last = next(reversed(body), None)
    if last != "prompt" or len(body) < 2 or not prompt.isascii() or "\x7f" in prompt:
        return json.dumps(body).encode("utf-8")
    head = json.dumps({name: value for name, value in body.items() if name != "prompt"})
    return f'{head[:-1]}, "prompt": {prompt}}}'.encode()


def batch_line(custom_id: str, request: Request, model: str) -> dict[str, Any]:
    """One line of a batch input file (OpenAI Batch API, `vllm run-batch`)."""
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": endpoint(request),
        "body": request_body(request, model),
    }


# ---------------------------------------------------------------------------------------------
# body -> Request (server side)


def request_model(body: Any) -> str:
    """The model a request body asks for, or BadRequest."""
    model = _object(body).get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("You must provide a model parameter.", "model")
    return model


def parse_requests(body: Any, chat: bool) -> list[Request]:
    """The Requests of a /v1/chat/completions (`chat`) or /v1/completions body: one per prompt,
    since a completions body may carry a list of prompts. Raises BadRequest."""
    payload = _object(body)
    if chat:
        return [Request(messages=_messages(payload), **_decoding(payload))]
    fields = _decoding(payload)
    return [Request(prompt=prompt, **fields) for prompt in _prompts(payload)]


def parse_request(body: Any, chat: bool | None = None) -> Request:
    """The single Request of a body (chat when it has "messages", unless `chat` says which);
    the inverse of `request_body`. Raises BadRequest."""
    if chat is None:
        chat = "messages" in _object(body)
    requests = parse_requests(body, chat)
    if len(requests) != 1:
        raise BadRequest("'prompt' must be a single string here.", "prompt")
    return requests[0]


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def _decoding(body: dict[str, Any]) -> dict[str, Any]:
    """The decoding fields of a body, as keyword arguments of `Request`."""
    if body.get("n") not in (None, 1):
        raise BadRequest("Only n=1 is supported.", "n")
    fields: dict[str, Any] = {"stop": _stop(body.get("stop"))}
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    if max_tokens is not None:
        fields["max_tokens"] = _integer(max_tokens, "max_tokens", minimum=1)
    for name in DECODING_FLOATS:
        if body.get(name) is not None:
            fields[name] = _number(body[name], name)
    if body.get("seed") is not None:
        fields["seed"] = _integer(body["seed"], "seed")
    return fields


def _integer(value: Any, name: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"'{name}' must be an integer.", name)
    if minimum is not None and value < minimum:
        raise BadRequest(f"'{name}' must be at least {minimum}.", name)
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"'{name}' must be a number.", name)
    return float(value)


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise BadRequest("'stop' must be null, a string or a list of strings.", "stop")


def _prompts(body: dict[str, Any]) -> list[str]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    raise BadRequest("'prompt' must be a string or a non-empty list of strings.", "prompt")


def _messages(body: dict[str, Any]) -> Messages:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list.", "messages")
    pairs = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest("Each message needs a 'role' and a 'content'.", "messages")
        pairs.append((message["role"], _content(message.get("content"))))
    return tuple(pairs)


def _content(value: Any) -> str:
    """A message's content: a string, null, or a list of {"type": "text", "text": ...} parts."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(part, dict) and isinstance(part.get("text"), str) for part in value
    ):
        return "".join(part["text"] for part in value)
    raise BadRequest("A message's 'content' must be a string.", "messages")


# ---------------------------------------------------------------------------------------------
# Completion -> response body (server side)


def response_body(
    completions: Completion | Sequence[Completion],
    model: str,
    chat: bool,
    *,
    number: int = 0,
    created: int | None = None,
) -> dict[str, Any]:
    """The response body answering with `completions` (one choice each, in order); the inverse
    of `parse_body`. `number` makes the id ("cmpl-3", "chatcmpl-3"); `created` defaults to
    now."""
    if isinstance(completions, Completion):
        completions = [completions]
    choices = [_choice(index, c, chat) for index, c in enumerate(completions)]
    prefix, kind = ("chatcmpl", "chat.completion") if chat else ("cmpl", "text_completion")
    return {
        "id": f"{prefix}-{number}",
        "object": kind,
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": choices,
        "usage": _usage(completions),
    }


def _choice(index: int, completion: Completion, chat: bool) -> dict[str, Any]:
    if chat:
        return {
            "index": index,
            "message": {"role": "assistant", "content": completion.text},
            "finish_reason": completion.finish_reason,
        }
    return {
        "index": index,
        "text": completion.text,
        "finish_reason": completion.finish_reason,
        "logprobs": None,
    }


def _usage(completions: Sequence[Completion]) -> dict[str, int]:
    prompt_tokens = sum(c.prompt_tokens for c in completions)
    completion_tokens = sum(c.completion_tokens for c in completions)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


# ---------------------------------------------------------------------------------------------
# response body -> Completion (client side)


def parse_body(body: Any, chat: bool) -> Completion:
    """A Completion from a response body (its first choice), or MalformedResponse."""
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
    return Completion(
        text=text,
        finish_reason=str(finish),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )
