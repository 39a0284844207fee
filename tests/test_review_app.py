"""The review page's server over real HTTP on 127.0.0.1: it lists the sample, stores every
answer and undo as it comes, refuses whatever is not the page's own request (wrong token,
Host, origin or site, body type, size or shape, method, item, answer) with its status and
nothing stored, sends its security headers on every response, and never shows its token in
an error or a log."""

from __future__ import annotations

import http.client
import json
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import interruptible
from review_runs import (
    draw,
    fake_run,
    ratings_of,
    request,
    session,
    stored_reviews,
)

from selfinstruct.reviewing.handler import BODY_LIMIT, CSP, HEADERS
from selfinstruct.reviewing.server import ReviewServer, start_server
from selfinstruct.store.run_store import RunStore

SAMPLE = 20
JSON = "application/json; charset=utf-8"
ITEM = "<first item>"  # replaced by the sample's first item in a request body


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    found = fake_run(tmp_path_factory.mktemp("review") / "run")
    assert len(draw(found, SAMPLE)) == SAMPLE
    return found


@contextmanager
def serve(run: Path, reviewer: str, patience: float = 0.2) -> Iterator[ReviewServer]:
    """A server of the reviewer's session while the loop lasts (an answer waits `patience`
    seconds for the run's lock, instead of the command's 5)."""
    with start_server(session(run, reviewer, patience)).serving() as server:
        yield server


@pytest.fixture(scope="module")
def server(run: Path) -> Iterator[ReviewServer]:
    with serve(run, "mallory") as found:
        yield found


def first_item(run: Path) -> str:
    return session(run, "anyone").items[0].instance


def token_of(server: ReviewServer) -> str:
    return server.url.rstrip("/").rsplit("/", 1)[1]


def answer(item: str, field: str, value: Any) -> dict[str, Any]:
    return {"id": item, "field": field, "value": value}


# -- what the page reads and changes --------------------------------------------------------
@pytest.mark.slow  # a local HTTP server
def test_the_state_lists_the_sample_in_order(run: Path) -> None:
    reviewing = session(run, "reader")
    with serve(run, "reader") as server:
        found = request(server, "GET", "api/state")
    assert found.status == 200
    state = found.json()
    assert state["reviewer"] == "reader" and state["run"] == "run"
    assert [item["id"] for item in state["items"]] == [i.instance for i in reviewing.items]
    assert len(state["items"]) == SAMPLE
    first = reviewing.items[0]
    assert state["items"][0] == {
        "id": first.instance,
        "instruction": first.instruction,
        "input": first.input,
        "output": first.output,
        "is_classification": first.is_classification,
    }
    assert state["ratings"] == {}
    assert state["progress"] == {"complete": 0, "started": 0, "total": SAMPLE}


@pytest.mark.slow  # a local HTTP server
def test_answers_and_undo_are_stored_as_they_come(run: Path) -> None:
    item = first_item(run)
    given = [("instruction", True), ("input", False), ("output", True), ("rating", "B")]
    given.append(("note", "Input is off-topic; <b>not</b> bold."))
    with serve(run, "alice") as server:
        for field, value in given:
            found = request(server, "POST", "api/answer", answer(item, field, value))
            assert found.status == 200, found.body
            assert found.json()["rating"][field] == value
            assert ratings_of(run, "alice")[item].value(field) == value
        stored = ratings_of(run, "alice")[item]
        assert stored.answers == {"instruction": True, "input": False, "output": True}
        assert stored.rating == "B" and stored.complete
        state = request(server, "GET", "api/state").json()
        assert state["ratings"][item]["complete"] is True
        assert state["progress"] == {"complete": 1, "started": 1, "total": SAMPLE}
        # Undo walks the answers back, last first; then there is nothing to undo.
        for field, _ in reversed(given):
            found = request(server, "POST", "api/undo", {})
            assert found.status == 200 and found.json()["id"] == item
            assert found.json()["rating"][field] == ("" if field == "note" else None)
            left = ratings_of(run, "alice")
            assert field == "instruction" or left[item].value(field) in (None, "")
        assert ratings_of(run, "alice") == {}
        assert request(server, "POST", "api/undo", {}).json() == {"id": None, "rating": {}}
        assert (server.answers, server.refused) == (len(given), 0)


@pytest.mark.slow  # a local HTTP server
def test_answers_given_at_once_are_all_stored(run: Path) -> None:
    """The server's threads reach the session one at a time: each answer opens the store
    and takes the run's lock, which a second thread of the same process would not get."""
    items = [item.instance for item in session(run, "bob").items]
    with serve(run, "bob") as server:

        def post(item: str) -> None:
            found = request(server, "POST", "api/answer", answer(item, "output", False))
            assert found.status == 200, found.body

        threads = [threading.Thread(target=post, args=(item,)) for item in items]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    stored = ratings_of(run, "bob")
    assert sorted(stored) == sorted(items)
    assert all(rating.answers["output"] is False for rating in stored.values())


# -- refusals -------------------------------------------------------------------------------
GOOD = answer(ITEM, "instruction", True)
BASE = "/review/{token}/"
ANSWER = BASE + "api/answer"
UNDO = BASE + "api/undo"
STATE = BASE + "api/state"
# What a browser sends when a page of another site opens a link to the review page.
NAVIGATE = {
    "Sec-Fetch-Site": "cross-site",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Dest": "document",
}
LARGE = json.dumps({**GOOD, "value": "x" * BODY_LIMIT}).encode()
# (why, method, target, JSON body or raw bytes, headers, status)
REFUSALS: list[tuple[str, str, str, Any, dict[str, str], int]] = [
    ("wrong token", "POST", "/review/{wrong}/api/answer", GOOD, {}, 404),
    ("token one character short", "POST", "/review/{short}/api/answer", GOOD, {}, 404),
    ("no token", "POST", "/review/api/answer", GOOD, {}, 404),
    ("empty token", "POST", "/review//api/answer", GOOD, {}, 404),
    ("page without its slash", "GET", "/review/{token}", None, {}, 404),
    ("page without token", "GET", "/review/", None, {}, 404),
    ("root", "GET", "/", None, {}, 404),
    ("favicon", "GET", "/favicon.ico", None, {}, 404),
    ("other path", "GET", BASE + "run.json", None, {}, 404),
    ("path upwards", "GET", BASE + "../../selfinstruct.db", None, {}, 404),
    ("unknown item", "POST", ANSWER, {**GOOD, "id": "99999.0"}, {}, 404),
    ("item id not in the form n.k", "POST", ANSWER, {**GOOD, "id": "x"}, {}, 404),
    ("malformed JSON", "POST", ANSWER, b'{"id": "1.0", ', {}, 400),
    ("JSON not UTF-8", "POST", ANSWER, b'{"id": "\xff"}', {}, 400),
    ("deeply nested JSON", "POST", ANSWER, b"[" * 20000 + b"]" * 20000, {}, 400),
    ("not an object", "POST", ANSWER, [GOOD], {}, 400),
    ("a string", "POST", ANSWER, "instruction", {}, 400),
    ("missing value", "POST", ANSWER, {"id": ITEM, "field": "instruction"}, {}, 400),
    ("extra key", "POST", ANSWER, {**GOOD, "reviewer": "alice"}, {}, 400),
    ("id not a string", "POST", ANSWER, {**GOOD, "id": 2.0}, {}, 400),
    ("field not a string", "POST", ANSWER, {**GOOD, "field": ["rating"]}, {}, 400),
    ("unknown field", "POST", ANSWER, {**GOOD, "field": "verdict"}, {}, 400),
    ("question answered with a string", "POST", ANSWER, {**GOOD, "value": "yes"}, {}, 400),
    ("question answered with 1", "POST", ANSWER, {**GOOD, "value": 1}, {}, 400),
    ("rating E", "POST", ANSWER, answer(ITEM, "rating", "E"), {}, 400),
    ("rating in lower case", "POST", ANSWER, answer(ITEM, "rating", "a"), {}, 400),
    ("rating true", "POST", ANSWER, answer(ITEM, "rating", True), {}, 400),
    ("note a number", "POST", ANSWER, answer(ITEM, "note", 5), {}, 400),
    ("note null", "POST", ANSWER, answer(ITEM, "note", None), {}, 400),
    ("note too long", "POST", ANSWER, answer(ITEM, "note", "x" * 2001), {}, 400),
    ("undo with a body", "POST", UNDO, {"all": True}, {}, 400),
    ("undo not an object", "POST", UNDO, [], {}, 400),
    ("Content-Length not a number", "POST", ANSWER, GOOD, {"Content-Length": "ten"}, 400),
    ("body over 64 KiB", "POST", ANSWER, LARGE, {}, 413),
    ("text/plain", "POST", ANSWER, GOOD, {"Content-Type": "text/plain"}, 415),
    ("a form", "POST", ANSWER, GOOD, {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ("no content type", "POST", ANSWER, GOOD, {"Content-Type": ""}, 415),
    ("another origin", "POST", ANSWER, GOOD, {"Origin": "http://evil.example"}, 403),
    ("origin null", "POST", ANSWER, GOOD, {"Origin": "null"}, 403),
    ("origin on another port", "POST", ANSWER, GOOD, {"Origin": "http://127.0.0.1:{other}"}, 403),
    ("origin over https", "POST", ANSWER, GOOD, {"Origin": "https://127.0.0.1:{port}"}, 403),
    ("undo from another origin", "POST", UNDO, {}, {"Origin": "http://evil.example"}, 403),
    ("cross-site fetch", "POST", ANSWER, GOOD, {"Sec-Fetch-Site": "cross-site"}, 403),
    ("same-site fetch", "POST", ANSWER, GOOD, {"Sec-Fetch-Site": "same-site"}, 403),
    ("undo cross-site", "POST", UNDO, {}, {"Sec-Fetch-Site": "cross-site"}, 403),
    # A GET is the page's own too: nothing another origin or site may read or load.
    ("state for another origin", "GET", STATE, None, {"Origin": "http://evil.example"}, 403),
    ("state for origin null", "GET", STATE, None, {"Origin": "null"}, 403),
    ("state for another port", "GET", STATE, None, {"Origin": "http://127.0.0.1:{other}"}, 403),
    ("page for another origin", "GET", BASE, None, {"Origin": "http://evil.example"}, 403),
    ("state cross-site", "GET", STATE, None, {"Sec-Fetch-Site": "cross-site"}, 403),
    ("state same-site", "GET", STATE, None, {"Sec-Fetch-Site": "same-site"}, 403),
    ("script cross-site", "GET", BASE + "app.js", None, {"Sec-Fetch-Site": "cross-site"}, 403),
    ("style same-site", "GET", BASE + "app.css", None, {"Sec-Fetch-Site": "same-site"}, 403),
    ("state navigated to", "GET", STATE, None, {**NAVIGATE, "Sec-Fetch-Site": "same-site"}, 403),
    ("page in a frame", "GET", BASE, None, {**NAVIGATE, "Sec-Fetch-Dest": "iframe"}, 403),
    ("a wrong token cross-site", "GET", "/review/{wrong}/", None, {"Origin": "null"}, 403),
    ("another Host", "POST", ANSWER, GOOD, {"Host": "evil.example:{port}"}, 403),
    ("another Host for the page", "GET", BASE, None, {"Host": "evil.example"}, 403),
    ("another Host for the state", "GET", BASE + "api/state", None, {"Host": "a.test"}, 403),
    ("Host on another port", "POST", ANSWER, GOOD, {"Host": "127.0.0.1:{other}"}, 403),
    ("Host without its port", "POST", ANSWER, GOOD, {"Host": "localhost"}, 403),
    ("PUT an answer", "PUT", ANSWER, GOOD, {}, 405),
    ("DELETE the page", "DELETE", BASE, None, {}, 405),
    ("OPTIONS", "OPTIONS", ANSWER, None, {}, 405),
    ("a made-up method", "BREW", ANSWER, GOOD, {}, 405),
    ("GET an answer", "GET", ANSWER, None, {}, 405),
    ("POST to the page", "POST", BASE, GOOD, {}, 405),
    ("POST to the state", "POST", BASE + "api/state", {}, {}, 405),
]


def filled(text: str, server: ReviewServer, item: str) -> str:
    token = token_of(server)
    return text.format(
        token=token,
        wrong=secret_like(token),
        short=token[:-1],
        port=server.port,
        other=server.port + 1,
    ).replace(ITEM, item)


def secret_like(token: str) -> str:
    """Another token of the same length and alphabet."""
    return token[::-1] if token[::-1] != token else "A" * len(token)


def with_item(body: Any, item: str) -> Any:
    if isinstance(body, bytes):
        return body
    return json.loads(json.dumps(body).replace(json.dumps(ITEM), json.dumps(item)))


@pytest.mark.parametrize(
    ("method", "target", "body", "headers", "status"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
@pytest.mark.slow  # a local HTTP server
def test_a_refused_request_stores_nothing(
    run: Path,
    server: ReviewServer,
    method: str,
    target: str,
    body: Any,
    headers: dict[str, str],
    status: int,
) -> None:
    item = first_item(run)
    before = stored_reviews(run)
    refused = server.refused
    sent = {name: filled(value, server, item) for name, value in headers.items()}
    data = with_item(body, item)
    found = request(
        server,
        method,
        filled(target, server, item),
        None if isinstance(data, bytes) else data,
        sent,
        raw=data if isinstance(data, bytes) else None,
        absolute=True,
    )
    assert found.status == status, found.body
    assert set(found.json()) == {"error"}
    assert token_of(server) not in found.body.decode()
    assert found.headers["Content-Security-Policy"] == CSP
    if status == 405:
        assert found.headers["Allow"] in ("GET", "POST")
    assert stored_reviews(run) == before
    assert server.refused == refused + 1


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (
            "",
            {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
        ),
        ("", NAVIGATE),  # a link to the page from another site (a notebook) opens it
        ("", {**NAVIGATE, "Sec-Fetch-Site": "same-site"}),
        ("app.js", {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "script"}),
        ("api/state", {"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:{port}"}),
        ("api/state", {"Origin": "http://localhost:{port}", "Host": "localhost:{port}"}),
        ("api/state", {}),  # no browser at all
    ],
    ids=["typed", "linked cross-site", "linked same-site", "script", "state", "localhost", "curl"],
)
@pytest.mark.slow  # a local HTTP server
def test_the_pages_own_requests_are_served(
    run: Path, server: ReviewServer, path: str, headers: dict[str, str]
) -> None:
    sent = {name: filled(value, server, "") for name, value in headers.items()}
    found = request(server, "GET", path, headers=sent)
    assert found.status == 200, found.body


def raw_exchange(server: ReviewServer, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (what http.client would not send) and read the response."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        # A request line http.server cannot parse: its own message would repeat it.
        (b"GET /review/{token}/ HTTP/1.1 and more\r\nHost: 127.0.0.1:{port}\r\n\r\n", 400),
        (b"GET /review/{token}/ HTTP/9.9\r\nHost: 127.0.0.1:{port}\r\n\r\n", 505),
        (b"GET /review/{token}/" + b"x" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
        # A POST without Content-Length.
        (
            b"POST /review/{token}/api/undo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            b"Content-Type: application/json\r\nConnection: close\r\n\r\n{}",
            411,
        ),
        # Two Host headers.
        (
            b"GET /review/{token}/api/state HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            b"Host: evil.example\r\n\r\n",
            403,
        ),
    ],
    ids=["malformed request line", "HTTP/9.9", "request line too long", "no length", "2 Hosts"],
)
@pytest.mark.slow  # a local HTTP server
def test_requests_http_server_refuses_keep_the_headers_and_the_secret(
    run: Path, server: ReviewServer, request_bytes: bytes, status: int
) -> None:
    before = stored_reviews(run)
    token = token_of(server)
    data = request_bytes.replace(b"{token}", token.encode())
    found, headers, body = raw_exchange(server, data.replace(b"{port}", str(server.port).encode()))
    assert found == status, body
    assert "error" in json.loads(body)
    assert token not in body.decode()
    assert headers["Content-Security-Policy"] == CSP
    assert stored_reviews(run) == before


@pytest.mark.slow  # a local HTTP server
def test_a_store_in_use_is_a_503_with_its_reason(run: Path) -> None:
    item = first_item(run)
    with serve(run, "carol") as server:
        before = stored_reviews(run)
        with RunStore.open(run):  # another command holds the run's lock
            for path, body in (("api/answer", answer(item, "input", True)), ("api/undo", {})):
                found = request(server, "POST", path, body)
                assert found.status == 503
                assert "in use by another selfinstruct process" in found.json()["error"]
            assert request(server, "GET", "api/state").status == 200  # reading still works
        assert stored_reviews(run) == before
        assert request(server, "POST", "api/answer", answer(item, "input", True)).status == 200
    assert ratings_of(run, "carol")[item].answers["input"] is True


# -- what every response carries ------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body", "status", "content_type"),
    [
        ("GET", "", None, 200, "text/html; charset=utf-8"),
        ("GET", "app.js", None, 200, "text/javascript; charset=utf-8"),
        ("GET", "app.css", None, 200, "text/css; charset=utf-8"),
        ("GET", "icon.svg", None, 200, "image/svg+xml; charset=utf-8"),
        ("GET", "api/state", None, 200, JSON),
        ("POST", "api/answer", answer(ITEM, "note", "headers"), 200, JSON),
        ("POST", "api/undo", {}, 200, JSON),
        ("GET", "missing", None, 404, JSON),
        ("POST", "api/answer", [], 400, JSON),
    ],
)
@pytest.mark.slow  # a local HTTP server
def test_every_response_carries_the_security_headers(
    run: Path,
    server: ReviewServer,
    method: str,
    path: str,
    body: Any,
    status: int,
    content_type: str,
) -> None:
    found = request(server, method, path, with_item(body, first_item(run)))
    assert found.status == status
    assert found.headers["Content-Type"] == content_type
    assert int(found.headers["Content-Length"]) == len(found.body)
    for name, value in HEADERS.items():
        assert found.headers[name] == value, name
    assert "Python" not in found.headers["Server"]


def test_the_page_is_self_contained() -> None:
    """No inline script or style (the policy would block them) and no address elsewhere:
    the page works offline and tells nobody what is reviewed."""
    from importlib import resources

    assets = resources.files("selfinstruct.reviewing").joinpath("assets")
    page = assets.joinpath("index.html").read_text("utf-8")
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert 'src="app.js"' in tag
    assert re.search(r"<script[^>]*>\s*[^<\s]", page) is None
    assert "<style" not in page and " style=" not in page
    assert re.search(r"\son[a-z]+=", page) is None
    for name in ("index.html", "app.js", "app.css", "icon.svg"):
        text = assets.joinpath(name).read_text("utf-8")
        text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert re.search(r"(https?:)?//[a-z0-9]", text, re.IGNORECASE) is None, name
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, name


@pytest.mark.slow  # a local HTTP server
def test_the_server_listens_on_loopback_only_under_a_new_token(run: Path) -> None:
    reviewing = session(run, "dave")
    first, second = start_server(reviewing), start_server(reviewing)
    with first, second:
        for server in (first, second):
            assert server._httpd.server_address[0] == "127.0.0.1"
            assert server.url == f"http://127.0.0.1:{server.port}/review/{token_of(server)}/"
            assert len(token_of(server)) >= 32
        assert token_of(first) != token_of(second)
    with start_server(reviewing, token="chosen-token") as chosen:
        assert chosen.url.endswith("/review/chosen-token/")


@pytest.mark.slow  # a local HTTP server
def test_nothing_is_logged(run: Path, capfd: pytest.CaptureFixture[str]) -> None:
    item = first_item(run)
    with serve(run, "erin") as server:
        request(server, "GET", "")
        request(server, "POST", "api/answer", answer(item, "rating", "A"))
        request(server, "POST", "api/answer", answer(item, "rating", "Z"))
        request(server, "GET", "nothing-here")
        raw_exchange(server, b"GARBAGE\r\n\r\n")
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def hang_up(server: ReviewServer, target: str, *, reset: bool) -> None:
    """Send a request and close the connection at once, without reading the reply: with a
    reset (SO_LINGER 0, as a killed tab or a proxy does) or a plain close."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def requests_done(timeout: float = 10.0) -> None:
    """Wait for the server's request threads to end (what they print is printed then)."""
    deadline = time.monotonic() + timeout
    while any("process_request" in thread.name for thread in threading.enumerate()):
        assert time.monotonic() < deadline, "a request thread is still running"
        time.sleep(0.01)


@pytest.mark.slow  # a local HTTP server
def test_a_client_that_hangs_up_is_no_error(run: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with serve(run, "ivan") as server:
        target = urlsplit(server.url).path + "api/state"
        for reset in (True, False):
            for _ in range(10):
                hang_up(server, target, reset=reset)
        requests_done()
        assert request(server, "GET", "api/state").status == 200  # still serving
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


@pytest.mark.slow  # a local HTTP server
def test_an_unexpected_error_is_one_line_without_the_token(
    run: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug while answering (a 500) or while sending the reply (the connection closed
    then): a line each on stderr, naming the error but not the request or its token."""
    with serve(run, "judy") as server:
        token = token_of(server)

        def broken() -> dict[str, Any]:
            raise RuntimeError(f"broken at {server.url}\nsecond line")

        monkeypatch.setattr(server.session, "state", broken)
        found = request(server, "GET", "api/state")
        assert found.status == 500 and found.json() == {"error": "internal error (RuntimeError)"}
        requests_done()
        _, err = capfd.readouterr()
        assert err.count("\n") == 1 and "RuntimeError: broken at" in err, err
        assert token not in err and "Traceback" not in err
        monkeypatch.setattr(server, "counted", lambda reply: 1 / 0)
        with pytest.raises(http.client.RemoteDisconnected):
            request(server, "GET", "")
        requests_done()
    out, err = capfd.readouterr()
    assert out == "" and err.count("\n") == 1 and "ZeroDivisionError" in err, err
    assert "Traceback" not in err and token not in err


# -- the command ----------------------------------------------------------------------------
class Command:
    """`selfinstruct review` in a child process, at the URL it printed."""

    def __init__(self, run: Path, reviewer: str) -> None:
        options = ["--run", str(run), "--port", "0", "--sample", str(SAMPLE)]
        options += ["--reviewer", reviewer]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "selfinstruct", "review", *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=interruptible,
        )
        try:
            self.url = self._printed_url(timeout=60)
        except BaseException:
            self.close()
            raise
        self.port = int(self.url.split(":")[2].split("/")[0])

    def __enter__(self) -> Command:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill it if it still runs (a test that failed midway leaves no server behind)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        if (reader := getattr(self, "reader", None)) is not None:
            reader.join(timeout=10)  # it reads stdout up to its end
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()

    def _printed_url(self, timeout: float) -> str:
        """The URL of the line `Review at: URL` (read in a thread: a pipe gives no timeout)."""
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.process.stdout
        assert stdout is not None
        self.out: list[str] = []

        def read() -> None:
            for line in stdout:
                self.out.append(line)
                lines.put(line)
            lines.put("")

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + timeout
        while (line := lines.get(timeout=max(0.0, deadline - time.monotonic()))) != "":
            if line.startswith("Review at: "):
                return line.removeprefix("Review at: ").strip()
        raise AssertionError(f"the command ended: {self.process.communicate()[1]}")

    def stop(self, how: signal.Signals) -> tuple[int, str]:
        """Send a signal; its exit code and everything it printed."""
        self.process.send_signal(how)
        self.process.wait(timeout=30)
        self.reader.join(timeout=10)
        return self.process.returncode, "".join(self.out)


@pytest.mark.slow  # a process of its own
def test_the_command_serves_and_a_kill_loses_no_answer(run: Path) -> None:
    """Answers are committed as they come: a SIGKILL between two of them loses neither.
    Then a second session of the same reviewer ends on SIGTERM (the summary printed)."""
    items = [item.instance for item in session(run, "frank").items]
    complete = (("instruction", True), ("input", False), ("output", True), ("rating", "C"))
    given = [(item, field, value) for item in items[:3] for field, value in complete]
    given.append((items[3], "note", "killed after this one"))
    with Command(run, "frank") as served:
        assert served.url.startswith(f"http://127.0.0.1:{served.port}/review/")
        for item, field, value in given:
            found = request(served, "POST", "api/answer", answer(item, field, value))
            assert found.status == 200, found.body
        code, _ = served.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL
    stored = ratings_of(run, "frank")
    for item, field, value in given:
        assert stored[item].value(field) == value
    assert [item for item in items if item in stored and stored[item].complete] == items[:3]
    # Again, stopped as Ctrl+C or a service manager would: the numbers are printed.
    with Command(run, "frank") as served:
        state = request(served, "GET", "api/state").json()
        assert state["progress"] == {"complete": 3, "started": 4, "total": SAMPLE}
        code, out = served.stop(signal.SIGTERM)
    assert code == 0 and "Review by people" in out
