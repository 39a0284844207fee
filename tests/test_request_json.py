"""A request's JSON texts, built from fields encoded once (llm/json_text.py), are exactly the
texts json.dumps writes: the canonical JSON stored with each answer, the cache key (a stored
key must keep finding its answer), and the body sent to a server."""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from selfinstruct.llm.base import Request
from selfinstruct.llm.json_text import value_text
from selfinstruct.llm.openai_format import body_json, request_body
from selfinstruct.store.schema import now

TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", "plain ascii", 'quote " backslash \\ tab \t', "\x7f DEL", "é ü 中", "\x00\x1f\n\r"]
)
NUMBER = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**20), 10**20)


def reference_canonical(request: Request) -> str:
    """The canonical JSON as it was first defined: json.dumps of the fields in field order."""
    data = {f.name: getattr(request, f.name) for f in fields(request)}
    data["messages"] = [list(m) for m in request.messages] if request.messages else None
    data["stop"] = list(request.stop)
    return json.dumps(data, ensure_ascii=False)


def reference_key(request: Request, backend_id: str) -> str:
    canonical = json.loads(reference_canonical(request))
    blob = json.dumps([backend_id, canonical], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@st.composite
def requests(draw: st.DrawFn) -> Request:
    chat = draw(st.booleans())
    messages = tuple(draw(st.lists(st.tuples(TEXT, TEXT), max_size=3))) if chat else None
    return Request(
        prompt=None if chat else draw(TEXT),
        messages=messages,
        max_tokens=draw(st.integers(1, 10**6)),
        temperature=draw(NUMBER),
        top_p=draw(NUMBER),
        presence_penalty=draw(st.floats(-2, 2)),
        frequency_penalty=draw(st.sampled_from([0.0, 1, -0.5])),
        stop=tuple(draw(st.lists(TEXT, max_size=3))),
        seed=draw(st.none() | st.integers(0, 2**31)),
        task=draw(TEXT),
    )


@given(requests(), TEXT)
def test_canonical_json_and_key_are_json_dumps(request_: Request, backend_id: str) -> None:
    assert request_.canonical_json() == reference_canonical(request_)
    assert request_.key(backend_id) == reference_key(request_, backend_id)
    assert request_.canonical() == json.loads(reference_canonical(request_))


def test_a_stored_key_does_not_change() -> None:
    """The key this request had before keys were built from encoded fields."""
    request_ = Request(prompt="Task: sort\nIs it classification?", max_tokens=3, stop=("\n",))
    assert request_.key("openai:fake") == reference_key(request_, "openai:fake")
    assert request_.key("openai:fake") == (
        "ff4383e19828302867d892645c04ba39d258cfc203f11070a20e200316e7cdd0"
    )


@given(TEXT | NUMBER | st.none() | st.booleans() | st.lists(TEXT | NUMBER, max_size=3))
def test_value_text_is_json_dumps(value: Any) -> None:
    assert value_text(value) == json.dumps(value, ensure_ascii=False)


@given(requests(), TEXT)
def test_the_body_sent_is_json_dumps_of_the_body(request_: Request, model: str) -> None:
    body = request_body(request_, model)
    assert body_json(request_, body) == json.dumps(body).encode("utf-8")


def test_now_is_the_utc_second() -> None:
    from datetime import UTC, datetime

    before = datetime.now(UTC).isoformat(timespec="seconds")
    stamp = now()
    after = datetime.now(UTC).isoformat(timespec="seconds")
    assert stamp in (before, after)
