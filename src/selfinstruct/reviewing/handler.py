"""The review server's HTTP side: each request checked before anything is done, routed to
the page's files or to the app's API, and answered with the security headers.

The token in the path is the only thing that makes a request the reviewer's: a web page open
in the same browser could otherwise post answers to a port it guessed. So besides it, what a
browser would send from elsewhere is refused: a Host that is not this address (DNS
rebinding), any request from another origin or site (a GET too: another page may not read
the state or load the page's files; only following a link to the page itself from another
site opens it, as typing its address would), a body that is not JSON (a form can post without
asking), and every response carries a Content-Security-Policy that lets the page load its own
files and nothing else. Refusals are JSON ({"error": ...}) that never repeat the request (its
path holds the token), and nothing is logged: the access log would print the token too. A
client that hangs up before its reply is no error; anything else unexpected is one line on
stderr (the error's name and message, the token taken out), never a traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Protocol

BODY_LIMIT = 64 * 1024  # bytes of a request body (a note is at most 2,000 characters)
DRAIN_LIMIT = 1024 * 1024  # a refused body up to this size is read, so the reply arrives
TIMEOUT = 30.0  # seconds a connection may take to send its request

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
JSON_TYPE = "application/json; charset=utf-8"
# The page's files by the path under the token: (file in assets/, Content-Type).
ASSETS = {
    "": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "app.css": ("app.css", "text/css; charset=utf-8"),
    "icon.svg": ("icon.svg", "image/svg+xml; charset=utf-8"),
}
STATE = "api/state"
POSTS = ("api/answer", "api/undo")
# Sec-Fetch-Site values a request may carry: the page itself, or an address typed or opened
# from outside a browser (no browser at all sends none).
SAME_ORIGIN = ("same-origin", "none")
# A connection the client closed or reset before its reply, or that sent nothing in time.
HUNG_UP = (ConnectionError, TimeoutError)
REPORT_LIMIT = 300  # characters of an unexpected error's message on stderr


class Refused(Exception):
    """A request answered with an error status, having done nothing."""

    def __init__(
        self, status: HTTPStatus, message: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


@dataclass(frozen=True)
class Reply:
    """A response before it is sent (the security headers are added to every one)."""

    status: HTTPStatus
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(value: Any, status: HTTPStatus = HTTPStatus.OK) -> Reply:
    return Reply(status, json.dumps(value).encode("utf-8"), JSON_TYPE)


def refusal(refused: Refused) -> Reply:
    reply = json_reply({"error": refused.message}, refused.status)
    return Reply(reply.status, reply.body, reply.content_type, refused.headers)


@cache
def asset(name: str) -> Reply:
    """One of the page's files (read once from the package)."""
    filename, content_type = ASSETS[name]
    data = resources.files("selfinstruct.reviewing").joinpath("assets", filename).read_bytes()
    return Reply(HTTPStatus.OK, data, content_type)


def not_found() -> Refused:
    """The same answer for a wrong token and a path that does not exist: nothing to learn."""
    return Refused(HTTPStatus.NOT_FOUND, "not found")


def not_allowed(allow: str) -> Refused:
    return Refused(
        HTTPStatus.METHOD_NOT_ALLOWED, f"method not allowed (use {allow})", (("Allow", allow),)
    )


def bad_request(message: str) -> Refused:
    return Refused(HTTPStatus.BAD_REQUEST, message)


class App(Protocol):
    """What the handler serves: which Host and Origin are its own, what a path asks for,
    and the API's answers (each may raise Refused); `redacted` takes the token out of a
    text."""

    hosts: frozenset[str]
    origins: frozenset[str]

    def route(self, target: str) -> str: ...
    def redacted(self, text: str) -> str: ...
    def state(self) -> Reply: ...
    def answer(self, body: Mapping[str, Any]) -> Reply: ...
    def undo(self, body: Mapping[str, Any]) -> Reply: ...
    def counted(self, reply: Reply) -> Reply: ...


class AppServer(ThreadingHTTPServer):
    """An HTTP server of `app` (a thread per request; they never outlive the process)."""

    daemon_threads = True
    request_queue_size = 128  # connections waiting to be accepted (socketserver's 5 resets
    # some of a burst: a page's requests while an answer waits for the run's lock)

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """An exception out of a request's thread: nothing when the client hung up (a closed
        tab, a reset), one line otherwise (socketserver prints a traceback and the
        client's address)."""
        found = sys.exception()
        if found is not None and not isinstance(found, HUNG_UP):
            self.report("a request failed", found)

    def report(self, what: str, exc: BaseException) -> None:
        """One line on stderr: what failed, the error's name and message (on one line, the
        token taken out)."""
        detail = self.app.redacted(" ".join(str(exc).split()))
        if len(detail) > REPORT_LIMIT:
            detail = detail[: REPORT_LIMIT - 1] + "…"
        error = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        print(f"selfinstruct review: {what} ({error})", file=sys.stderr, flush=True)


class Handler(BaseHTTPRequestHandler):
    """One request: checked, routed to the page's files or the API, refused otherwise."""

    server: AppServer
    server_version = "selfinstruct-review"
    sys_version = ""
    timeout = TIMEOUT
    _body_read = False

    def do_GET(self) -> None:
        self._respond(self._get)

    def do_POST(self) -> None:
        self._respond(self._post)

    def __getattr__(self, name: str) -> Callable[[], None]:
        """Every other method (HEAD, PUT, DELETE, OPTIONS, anything): 405."""
        if name.startswith("do_"):
            return lambda: self._respond(self._other)
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing: every request line holds the token."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line, too long a header): as ours,
        without its message, which repeats the request line and so the token."""
        status = HTTPStatus(code)
        self.close_connection = True
        self._send(refusal(Refused(status, status.phrase.lower())))

    # -- routes -------------------------------------------------------------------------
    def _get(self) -> Reply:
        name = self._checked()
        if name in ASSETS:
            return asset(name)
        if name == STATE:
            return self.server.app.state()
        if name in POSTS:
            raise not_allowed("POST")
        raise not_found()

    def _post(self) -> Reply:
        name = self._checked()
        if name not in POSTS:
            raise not_allowed("GET") if name in ASSETS or name == STATE else not_found()
        body = self._json_body()
        app = self.server.app
        return app.answer(body) if name == "api/answer" else app.undo(body)

    def _other(self) -> Reply:
        name = self._checked()
        if name in POSTS:
            raise not_allowed("POST")
        if name in ASSETS or name == STATE:
            raise not_allowed("GET")
        raise not_found()

    # -- checks -------------------------------------------------------------------------
    def _checked(self) -> str:
        """The route asked for, once the Host is this server's (a page on another name
        that resolves here, DNS rebinding, is refused before anything else) and the request
        comes from the page itself, whatever its method."""
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1 or hosts[0].strip().lower() not in self.server.app.hosts:
            raise Refused(HTTPStatus.FORBIDDEN, "the Host header is not this review server")
        origin = self.headers.get("Origin")
        if origin is not None and origin not in self.server.app.origins:
            raise Refused(HTTPStatus.FORBIDDEN, "requests from another origin are refused")
        name = self.server.app.route(self.path)
        site = self.headers.get("Sec-Fetch-Site", "same-origin").strip().lower()
        if site not in SAME_ORIGIN and not (name == "" and self._opens_the_page()):
            raise Refused(HTTPStatus.FORBIDDEN, "requests from another site are refused")
        return name

    def _opens_the_page(self) -> bool:
        """A link followed to the page from another site (a notebook's, say): the tab shows
        the page, and the other site reads nothing of it. Not in a frame, not a fetch."""
        mode = self.headers.get("Sec-Fetch-Mode", "").strip().lower()
        dest = self.headers.get("Sec-Fetch-Dest", "").strip().lower()
        return self.command == "GET" and mode == "navigate" and dest == "document"

    def _json_body(self) -> dict[str, Any]:
        """The request's body: a JSON object of at most BODY_LIMIT bytes."""
        if self.headers.get_content_type() != "application/json":
            raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "expected application/json")
        length = self._length()
        if length is None:
            raise Refused(HTTPStatus.LENGTH_REQUIRED, "a Content-Length is required")
        if length > BODY_LIMIT:
            raise Refused(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {BODY_LIMIT} bytes"
            )
        self._body_read = True
        try:
            raw = self.rfile.read(length)
        except OSError as exc:
            self.close_connection = True
            raise bad_request("the body could not be read") from exc
        if len(raw) != length:
            raise bad_request("the body is shorter than its Content-Length")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise bad_request("the body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        return body

    def _length(self) -> int | None:
        """The Content-Length (None: missing); Refused 400 when it is not a number."""
        found = self.headers.get("Content-Length")
        if found is None:
            return None
        if not found.strip().isdigit():
            raise bad_request("the Content-Length is not a number")
        return int(found)

    # -- replies ------------------------------------------------------------------------
    def _respond(self, route: Callable[[], Reply]) -> None:
        try:
            reply = route()
        except Refused as refused:
            reply = refusal(refused)
        except Exception as exc:  # a bug: say so, without the request (it holds the token)
            self.server.report("internal error answering a request", exc)
            reply = refusal(
                Refused(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error ({type(exc).__name__})")
            )
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        """Send the reply; a client that hung up before it is let go quietly."""
        self._drain()
        self.server.app.counted(reply)  # before the client can read the reply
        if self.request_version == "HTTP/0.9":  # what http.server assumes of a line it could
            self.request_version = "HTTP/1.0"  # not parse: it would send no status or header
        try:
            self.send_response(reply.status)
            for name, value in (
                *HEADERS.items(),
                ("Content-Type", reply.content_type),
                ("Content-Length", str(len(reply.body))),
                *reply.headers,
            ):
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
        except HUNG_UP:
            self.close_connection = True
        self._body_read = False

    def _drain(self) -> None:
        """Read the body of a refused request (up to DRAIN_LIMIT): closing a socket with
        unread data resets it, and the client would never read why it was refused."""
        if self._body_read or getattr(self, "headers", None) is None:
            return
        self._body_read = True
        found = self.headers.get("Content-Length", "")
        if not found.strip().isdigit() or int(found) > DRAIN_LIMIT:
            self.close_connection = True
            return
        try:
            self.rfile.read(int(found))
        except OSError:
            self.close_connection = True
