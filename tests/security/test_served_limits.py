"""Limits a real server enforces before any handler: the request head and the body."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from gateway.demo.workspace import Workspace
from gateway.http.server_protocol import MAX_HEAD_BYTES
from tests.conftest import bearer
from tests.reliability.servers import server_process


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def raw_exchange(port: int, head: bytes, body_chunks: int = 0, chunk: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        try:
            conn.sendall(head)
            for _ in range(body_chunks):
                conn.sendall(chunk)
        except OSError:
            pass  # the server may close as soon as it has answered
        received = b""
        try:
            while part := conn.recv(65536):
                received += part
        except OSError:
            pass
        return received


@pytest.mark.slow
def test_a_real_server_bounds_headers_and_never_buffers_an_outsiders_body(workspace: Workspace):
    with server_process(workspace) as (url, process):
        port = int(url.rsplit(":", 1)[1])
        # 5 MB of headers: refused once the bound is passed, the connection closed.
        huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5_000_000 + b"\r\n\r\n"
        answer = raw_exchange(port, huge)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        # Many small headers add up the same way.
        many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * (MAX_HEAD_BYTES // 4)
        assert raw_exchange(port, many + b"\r\n").startswith(b"HTTP/1.1 431")
        # Normal requests still pass.
        assert httpx.get(url + "/healthz").status_code == 200

        # A 150 MB body without a token: 401 at once, the body never read or held.
        before = rss_kib(process.pid)
        head = (
            b"POST /v1/grants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 157286400\r\n\r\n"
        )
        started = time.monotonic()
        answer = raw_exchange(port, head, body_chunks=2400, chunk=b" " * 65536)
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert time.monotonic() - started < 30
        # With a token, the declared size alone is refused.
        response = httpx.post(
            url + "/v1/grants",
            content=b" " * (64 * 1024 + 1),
            headers={**bearer(workspace, "mei"), "Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert rss_kib(process.pid) - before < 40_000
