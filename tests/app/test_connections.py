"""Connection limits (app/connections.py) through a real ``seqlab serve``: huge or countless
headers, long URLs, slow or silent clients, too many connections and malformed framing are each
answered with problem JSON and the connection closed; ordinary requests are untouched."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.app.service_process import ServiceProcess

pytestmark = pytest.mark.slow

LIMITS = {
    "SEQLAB_CONNECTIONS__MAX_CONNECTIONS": "12",
    "SEQLAB_CONNECTIONS__HEADER_TIMEOUT_SECONDS": "1.5",
    "SEQLAB_CREATE_DEMO_MODEL": "false",
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    process = ServiceProcess(tmp_path_factory.mktemp("connections") / "data", LIMITS).start()
    yield process
    process.stop()


def _connect(service: ServiceProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", service.port), timeout=20)


def _read_answer(connection: socket.socket) -> tuple[int, dict[str, str], dict]:
    """Read until the server closes: the status, the headers and the JSON body."""
    data = b""
    while True:
        try:
            chunk = connection.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, json.loads(body)


def _send_and_read(service: ServiceProcess, raw: bytes) -> tuple[int, dict[str, str], dict]:
    with _connect(service) as connection:
        # The answer may come, and the connection close, before all is sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(raw)
        return _read_answer(connection)


def _send_until_refused(connection: socket.socket, chunk: bytes, times: int) -> int:
    """Send ``chunk`` up to ``times`` times; the bytes sent before the server closed."""
    sent = 0
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        for _ in range(times):
            connection.sendall(chunk)
            sent += len(chunk)
    return sent


def _assert_problem(answer: tuple[int, dict[str, str], dict], status: int, slug: str) -> dict:
    code, headers, body = answer
    assert code == status, body
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert body["status"] == status
    assert body["type"] == f"urn:seqlab:problem:{slug}"
    return body


def test_a_header_over_the_byte_limit_is_a_431_before_it_is_read_whole(service):
    with _connect(service) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = _send_until_refused(connection, b"a" * 65536, 20 * 16)  # up to 20 MB
        body = _assert_problem(_read_answer(connection), 431, "headers-too-large")
    # Cut before the end (the kernel's socket buffers took what was sent after the cut); read
    # whole, the head would have waited for its end and met the header timeout (a 408).
    assert sent < 20 * 1_048_576
    assert "16384 bytes" in body["detail"]


def test_too_many_header_fields_are_a_431(service):
    fields = b"".join(b"X-Field-%d: 1\r\n" % number for number in range(150))
    answer = _send_and_read(service, b"GET /health HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert "100 fields" in _assert_problem(answer, 431, "headers-too-large")["detail"]


def test_a_url_over_its_limit_and_ten_thousand_query_parameters_are_a_414(service):
    query = "&".join(f"p{number}=1" for number in range(10_000)).encode()
    answer = _send_and_read(service, b"GET /health?" + query + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert "8192 bytes" in _assert_problem(answer, 414, "url-too-long")["detail"]


@pytest.mark.parametrize(
    "head",
    [
        b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 5\r\n\r\n",
        b"NOT A REQUEST\r\n\r\n",
    ],
    ids=["negative-content-length", "both-framings", "garbage"],
)
def test_malformed_framing_is_a_400_problem(service, head):
    body = _assert_problem(_send_and_read(service, head), 400, "malformed-request")
    assert "not valid HTTP/1.1" in body["detail"]


def test_headers_that_stall_are_cut_with_a_408(service):
    with _connect(service) as connection:
        started = time.monotonic()
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        body = _assert_problem(_read_answer(connection), 408, "request-timeout")
        assert time.monotonic() - started < 10
    assert "headers did not arrive within 1.5 s" in body["detail"]


def test_a_client_that_connects_and_says_nothing_is_cut_too(service):
    with _connect(service) as connection:
        _assert_problem(_read_answer(connection), 408, "request-timeout")


def test_past_the_connection_limit_a_new_one_gets_a_503_at_once(service):
    held = [_connect(service) for _ in range(12)]
    try:
        time.sleep(0.2)  # all accepted
        with _connect(service) as extra:
            started = time.monotonic()
            code, headers, body = _read_answer(extra)
            assert time.monotonic() - started < 1.0
        assert code == 503
        assert headers["retry-after"] == "1"
        assert body["type"] == "urn:seqlab:problem:too-many-connections"
    finally:
        for connection in held:
            connection.close()
    time.sleep(0.2)
    assert httpx.get(f"{service.base}/health", timeout=10).status_code == 200


def test_ordinary_requests_are_untouched(service):
    # A large body sent with its headers in one write, several requests on one connection, and
    # headers just under the limit.
    with httpx.Client(base_url=service.base, timeout=30) as client:
        text = "我爱学习自然语言处理" * 900  # 9,000 characters, ~27 KB of JSON with the head
        answer = client.post("/tokenize", json={"text": text})
        assert answer.status_code == 200, answer.text
        for _ in range(3):
            assert client.get("/health").status_code == 200
        near_limit = {f"x-field-{number}": "v" * 100 for number in range(90)}  # ~10 KB, 90
        assert client.get("/health", headers=near_limit).status_code == 200


def test_health_is_answered_before_the_app_and_kept_alive(service):
    with _connect(service) as connection:
        for _ in range(3):
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            reader = connection.makefile("rb")
            assert reader.readline().startswith(b"HTTP/1.1 200")
            headers = {}
            while (line := reader.readline()) != b"\r\n":
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            assert json.loads(reader.read(int(headers["content-length"]))) == {"status": "ok"}
            assert "connection" not in headers


def test_health_over_http_1_0_closes_its_connection(service):
    code, _, body = _send_and_read(service, b"GET /health HTTP/1.0\r\n\r\n")  # until closed
    assert (code, body) == (200, {"status": "ok"})


def test_a_body_promised_to_a_direct_answer_cannot_hold_the_connection(service):
    with _connect(service) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        started = time.monotonic()
        data = b""
        while chunk := connection.recv(65536):  # the answer, then the end of the connection
            data += chunk
        assert data.startswith(b"HTTP/1.1 200")
        assert time.monotonic() - started < 10  # closed after the header timeout (1.5 s)


def test_health_with_a_query_goes_through_the_app(service):
    answer = httpx.get(f"{service.base}/health?verbose=1", timeout=10)
    assert answer.status_code == 422
    assert "unknown query parameter 'verbose'" in answer.json()["detail"]


def test_a_refusal_behind_a_request_in_flight_comes_after_its_answer(service):
    body = json.dumps({"texts": ["我爱学习自然语言处理。" * 200] * 8}).encode()  # threaded work
    with _connect(service) as connection:
        connection.sendall(
            b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body + b"NOT A REQUEST\r\n\r\n"
        )
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    first, _, rest = data.partition(b"HTTP/1.1 400")
    assert first.startswith(b"HTTP/1.1 200"), data[:200]
    assert b"malformed-request" in rest


def _all_until_closed(connection: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := connection.recv(65536):
            data += chunk
    return data


def test_a_refusal_behind_pipelined_requests_comes_after_all_their_answers(service):
    with _connect(service) as connection:
        connection.sendall(
            b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n" * 2 + b"GARBAGE\r\n\r\n"
        )  # two requests waiting their turn, then bytes that are no request
        started = time.monotonic()
        data = _all_until_closed(connection)
        assert time.monotonic() - started < 5  # answered and closed, not held
    statuses = [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
    assert statuses == [200, 200, 400]


def test_a_broken_chunk_is_a_400_at_once_and_nothing_else(service):
    with _connect(service) as connection:
        connection.sendall(
            b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n"
        )
        started = time.monotonic()
        data = _all_until_closed(connection)
        assert time.monotonic() - started < 5  # not after the 30 s body timeout
    statuses = [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
    assert statuses == [400]
    assert b"malformed-request" in data
