"""The review page's web server (`selfinstruct review`): the page and a small JSON API over
one reviewer's session, on 127.0.0.1 only, behind a secret token in every path (what each
request must pass is in reviewing/handler.py).

Answers are committed by the session as they come (it writes one at a time, and waits a
little for the run's lock when another command holds it; past that the answer is refused
with 503 and the page says so)."""

from __future__ import annotations

import hmac
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from selfinstruct.errors import RunError
from selfinstruct.reviewing.handler import (
    AppServer,
    Refused,
    Reply,
    bad_request,
    json_reply,
    not_found,
)
from selfinstruct.reviewing.session import ReviewSession, UnknownItem

HOST = "127.0.0.1"  # never another interface: the page is for the person at this machine
PREFIX = "/review/"  # every path: /review/{token}/...
ANSWER_KEYS = {"id", "field", "value"}


def answer_args(body: Mapping[str, Any]) -> tuple[str, str, Any]:
    """The (id, field, value) of an answer's body; Refused 400 when it has other keys or an
    id or field that is not a string (the session checks the value)."""
    if set(body) != ANSWER_KEYS:
        raise bad_request('expected an object with the keys "id", "field" and "value"')
    if not isinstance(body["id"], str) or not isinstance(body["field"], str):
        raise bad_request('"id" and "field" must be strings')
    return body["id"], body["field"], body["value"]


class ReviewServer:
    """The review page for one session on 127.0.0.1:`port`, at `url` (which holds the token).

    Serve with `serve_forever()` (Ctrl+C ends it) and close with `shutdown()`, or serve in a
    background thread for as long as a `with server.serving():` block lasts. `answers` and
    `refused` count the answers stored and the requests refused, for a summary line."""

    def __init__(self, session: ReviewSession, port: int, token: str) -> None:
        self.session = session
        self._token = token.encode()
        self._token_text = token
        self._count_lock = threading.Lock()
        self._started = False
        self.answers = 0
        self.refused = 0
        self._httpd = AppServer((HOST, port), self)
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://{HOST}:{self.port}{PREFIX}{token}/"
        self.hosts = frozenset({f"{HOST}:{self.port}", f"localhost:{self.port}"})
        self.origins = frozenset(f"http://{host}" for host in self.hosts)

    # -- serving ------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Serve until `shutdown()` (from another thread) or KeyboardInterrupt."""
        self._started = True
        self._httpd.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        """Stop serving and close the socket. From the thread running serve_forever (a
        signal handler), raise instead (KeyboardInterrupt): this would wait for itself."""
        if self._started:
            self._httpd.shutdown()
        self._httpd.server_close()

    @contextmanager
    def serving(self) -> Iterator[ReviewServer]:
        """Serve in a daemon thread while the block lasts (tests, embedding)."""
        self._started = True
        thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            self.shutdown()
            thread.join(timeout=10)

    def __enter__(self) -> ReviewServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()

    # -- what a request may ask for -----------------------------------------------------
    def route(self, target: str) -> str:
        """The name a request target asks for under /review/{token}/ ("" for the page);
        Refused 404 for a wrong or missing token (compared in constant time)."""
        path = urlsplit(target).path
        if not path.startswith(PREFIX):
            raise not_found()
        token, slash, name = path[len(PREFIX) :].partition("/")
        if not slash or not hmac.compare_digest(token.encode(), self._token):
            raise not_found()
        return name

    def redacted(self, text: str) -> str:
        """`text` without the token (for what is printed of an unexpected error)."""
        return text.replace(self._token_text, "<token>") if self._token_text else text

    def state(self) -> Reply:
        return json_reply(self._call(self.session.state))

    def answer(self, body: Mapping[str, Any]) -> Reply:
        instance, field, value = answer_args(body)
        result = self._call(lambda: self.session.answer(instance, field, value))
        with self._count_lock:
            self.answers += 1
        return json_reply(result)

    def undo(self, body: Mapping[str, Any]) -> Reply:
        if body:
            raise bad_request("undo takes an empty object ({})")
        return json_reply(self._call(self.session.undo))

    def counted(self, reply: Reply) -> Reply:
        if reply.status >= HTTPStatus.BAD_REQUEST:
            with self._count_lock:
                self.refused += 1
        return reply

    def _call(self, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The session's answer to one request, its refusals as statuses: an item outside
        the sample 404, an answer the page cannot give 400, a store that cannot be written
        now (another command holds the run's lock, a full disk) 503."""
        try:
            return action()
        except UnknownItem as exc:
            raise Refused(HTTPStatus.NOT_FOUND, f"no item {exc} in the review sample") from exc
        except ValueError as exc:
            raise bad_request(str(exc)) from exc
        except (RunError, OSError, sqlite3.Error) as exc:
            raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, str(exc)) from exc


def start_server(session: ReviewSession, port: int = 0, token: str | None = None) -> ReviewServer:
    """The review page for `session`, bound to 127.0.0.1:`port` (0: a free port) under a
    secret token (default: a new random one); not serving yet (see ReviewServer)."""
    return ReviewServer(session, port, token if token is not None else secrets.token_urlsafe(24))
