"""The OpenAI wire format in both directions: what the client writes the server reads back
unchanged, and what the server answers the client reads back unchanged."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from selfinstruct.llm.backends.fake import FakeLLM
from selfinstruct.llm.base import Completion, Request
from selfinstruct.llm.openai_format import (
    CHAT,
    COMPLETIONS,
    BadRequest,
    batch_line,
    endpoint,
    parse_body,
    parse_request,
    parse_requests,
    request_body,
    response_body,
)
from selfinstruct.testing.openai_server import DEFAULT_MODEL, MockOpenAIServer

DECODING = {
    "max_tokens": 17,
    "temperature": 0.7,
    "top_p": 0.9,
    "presence_penalty": 1.5,
    "frequency_penalty": -0.5,
}
MESSAGES = (("system", "Be brief."), ("user", "Write a task."), ("assistant", "Sort a list."))

REQUESTS = [
    Request(prompt="List three tasks:\n1."),
    Request(prompt="Task:", stop=("\n\n", "Task:"), seed=0, **DECODING),
    Request(prompt="", stop=("x",), seed=123456789),
    Request(messages=(("user", "Write a task."),)),
    Request(messages=MESSAGES, stop=("\n",), seed=7, **DECODING),
    Request(messages=(("user", ""),), temperature=1.0, top_p=0.0),
]

COMPLETIONS_LIST = [
    Completion("9. Write a haiku about rain.", "stop", 5, 7),
    Completion("cut off he", "length", 1200, 64),
    Completion("", "stop", 0, 0),
    Completion('ünïcode \n and "quotes"', "stop", 3, 4),
]


@pytest.mark.parametrize("request_", REQUESTS)
def test_request_to_body_and_back_is_identity(request_: Request) -> None:
    body = request_body(request_, "m1")
    assert body["model"] == "m1"
    assert parse_request(body) == request_
    assert parse_request(body, chat=request_.is_chat) == request_
    assert endpoint(request_) == (CHAT if request_.is_chat else COMPLETIONS)


@pytest.mark.parametrize("completion", COMPLETIONS_LIST)
@pytest.mark.parametrize("chat", [False, True])
def test_completion_to_body_and_back_is_identity(completion: Completion, chat: bool) -> None:
    body = response_body(completion, "m1", chat, number=3, created=0)
    assert body["id"] == ("chatcmpl-3" if chat else "cmpl-3")
    assert body["object"] == ("chat.completion" if chat else "text_completion")
    assert parse_body(body, chat) == completion


def test_a_list_of_prompts_gives_one_request_and_one_choice_each() -> None:
    body = {"model": "m1", "prompt": ["a", "b"], "max_tokens": 3, "seed": 1}
    assert parse_requests(body, chat=False) == [
        Request(prompt="a", max_tokens=3, seed=1),
        Request(prompt="b", max_tokens=3, seed=1),
    ]
    reply = response_body(COMPLETIONS_LIST[:2], "m1", chat=False)
    assert [c["index"] for c in reply["choices"]] == [0, 1]
    assert reply["usage"] == {"prompt_tokens": 1205, "completion_tokens": 71, "total_tokens": 1276}
    with pytest.raises(BadRequest):
        parse_request(body)


def test_batch_line_carries_the_request_body() -> None:
    request = REQUESTS[4]
    line = batch_line("key-1", request, "m1")
    assert line == {
        "custom_id": "key-1",
        "method": "POST",
        "url": CHAT,
        "body": request_body(request, "m1"),
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x", "max_tokens": "many"}, "max_tokens"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "x", "temperature": True}, "temperature"),
        ({"prompt": "x", "seed": 1.5}, "seed"),
        ({"prompt": "x", "stop": 3}, "stop"),
        ({"prompt": "x", "n": 2}, "n"),
        ({"prompt": []}, "prompt"),
        ({"messages": []}, "messages"),
        ({"messages": [{"content": "no role"}]}, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages"),
        (["not", "an", "object"], None),
    ],
)
def test_bad_fields_name_the_field(body: Any, param: str | None) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_request(body)
    assert caught.value.param == param


def test_message_content_parts_are_joined() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {"role": "assistant", "content": None},
        ]
    }
    assert parse_request(body).messages == (("user", "ab"), ("assistant", ""))


@pytest.mark.parametrize("request_", [REQUESTS[1], REQUESTS[4]])
@pytest.mark.slow  # a local HTTP server
def test_a_request_through_the_local_server(request_: Request) -> None:
    with MockOpenAIServer() as server:
        url = f"http://{server.host}:{server.port}{endpoint(request_)}"
        response = httpx.post(url, json=request_body(request_, DEFAULT_MODEL), timeout=5)
    assert response.status_code == 200
    [expected] = FakeLLM(model=DEFAULT_MODEL).generate([request_])
    assert parse_body(response.json(), request_.is_chat) == expected
