"""A body that stops short of its Content-Length is cut with a 408, not held forever."""

from __future__ import annotations

import socket

import pytest

from tests.app.service_process import free_port, running_service


@pytest.mark.slow
def test_a_stalled_body_is_a_408_problem(tmp_path):
    port = free_port()
    with running_service(tmp_path, port, {"SEQLAB_BODY_TIMEOUT_SECONDS": "1"}):
        with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
            connection.sendall(
                b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n" + b'{"text": "'
            )
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = connection.recv(4096)
                if not chunk:
                    break
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        assert b"application/problem+json" in head
        assert b"urn:seqlab:problem:request-timeout" in body
        assert b"the body stopped arriving" in body
