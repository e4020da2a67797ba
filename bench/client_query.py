"""kiteline-client against the server's own governed read (export memory: export_memory).

``query``: ``Client.query`` of four columns over all 1,000,000 rows of the large
workspace (an employee under a pseudonymized grant), as Arrow over loopback from a
real ``kiteline serve``, into a ``pyarrow.Table``; one page (the workspace's per-request
cap covers the dataset). Baseline: the server's own governed read of the same query,
``Gateway.read`` in this process with every Arrow chunk consumed (bench/governed_read).
Both warm (pseudonym cache filled by a first read), interleaved, best of ``REPEATS``.
Target: client <= 1.2x the governed read. ``query.over_http`` compares the client
with a bare httpx POST of the same query whose body is read and dropped: what the
client itself adds to the HTTP transfer. ``query.paged`` is the same extract in pages
of 100,000 rows (ten decisions, audit records and budget charges), for scale.
``query.served_bytes`` reads the same answer off a plain socket and drops it: the
server's delivery alone (encoding, hashing what leaves, sending), the floor of any
client.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
from collections.abc import Callable

import httpx
from kiteline_client import Client

from bench import common
from bench.common import DATA_DIR, LargeWorkspace, Result, Target
from bench.governed_read import COLUMNS, governed_reader, open_gateway

ARROW = "application/vnd.apache.arrow.stream"
REPEATS = 3
PAGE_ROWS = 100_000
QUERY_TARGET = Target("ratio", "<=", 1.2)


def serve(workspace: LargeWorkspace, name: str) -> contextlib.AbstractContextManager[common.Served]:
    port = common.free_port()
    command = [
        sys.executable, "-m", "gateway.cli", "--config", str(workspace.config_path),
        "--log-level", "WARNING", "serve", "--port", str(port),
    ]  # fmt: skip
    return common.served(
        command, port=port, log_path=DATA_DIR / "logs" / f"{name}.log", timeout_s=300.0
    )


def socket_reader(
    url: str, workspace: LargeWorkspace, body: dict[str, object]
) -> Callable[[], int]:
    """A POST of ``body`` on a plain socket, its answer read until the server closes the
    connection (``Connection: close``) and dropped: the server side alone."""
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/datasets/{workspace.dataset}/query HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {workspace.token}\r\nAccept: {ARROW}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()

    def read() -> int:
        buffer = bytearray(4 * 1024 * 1024)
        total = 0
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(head + payload)
            while received := sock.recv_into(buffer):
                total += received
        if total < workspace.rows:
            raise RuntimeError(f"the socket read got {total} bytes")
        return total

    return read


def _query(workspace: LargeWorkspace) -> list[Result]:
    gateway = open_gateway(workspace)
    try:
        with serve(workspace, "client_query") as server:
            one_page = Client(server.url, workspace.token, page_rows=workspace.rows, timeout=300)
            paged = Client(server.url, workspace.token, page_rows=PAGE_ROWS, timeout=300)

            def client_query() -> None:
                table = one_page.query(workspace.dataset, columns=list(COLUMNS))
                if table.num_rows != workspace.rows:
                    raise RuntimeError(f"client read {table.num_rows} rows")

            def client_paged() -> None:
                table = paged.query(workspace.dataset, columns=list(COLUMNS))
                if table.num_rows != workspace.rows:
                    raise RuntimeError(f"paged client read {table.num_rows} rows")

            bare = httpx.Client(
                base_url=server.url,
                headers={"Authorization": f"Bearer {workspace.token}", "Accept": ARROW},
                timeout=300,
            )
            body = {"columns": list(COLUMNS), "limit": workspace.rows}

            def bare_http() -> None:
                response = bare.post(f"/v1/datasets/{workspace.dataset}/query", json=body)
                if response.status_code != 200 or not response.content:
                    raise RuntimeError(f"bare read answered {response.status_code}")

            timings = common.interleaved(
                {
                    "server": governed_reader(gateway, workspace),
                    "client": client_query,
                    "bare": bare_http,
                    "socket": socket_reader(server.url, workspace, body),
                    "paged": client_paged,
                },
                repeats=REPEATS,
            )
            for http in (one_page, paged, bare):
                http.close()
    finally:
        gateway.close()
    s, c, p, b, w = (timings[k] for k in ("server", "client", "paged", "bare", "socket"))
    return [
        Result(
            "client_query.arrow_1M_rows",
            c.best,
            "s",
            baseline=s.best,
            target=QUERY_TARGET,
            note=f"best of {REPEATS}; medians {c.median:.3f}s vs {s.median:.3f}s; baseline = "
            "Gateway.read in-process (the server's governed read, no socket)",
        ),
        Result(
            "client_query.arrow_1M_rows.over_http",
            c.best,
            "s",
            baseline=b.best,
            target=QUERY_TARGET,
            note=f"best of {REPEATS}; baseline = a bare httpx POST of the same query, body "
            "read and dropped (the HTTP transfer alone)",
        ),
        Result(
            "client_query.arrow_1M_rows.served_bytes",
            w.best,
            "s",
            baseline=s.best,
            note=f"best of {REPEATS}; the same answer read off a plain socket and dropped (no "
            "HTTP parsing, no decoding): what the server's delivery costs, the floor of any client",
        ),
        Result(
            "client_query.arrow_1M_rows.paged",
            p.best,
            "s",
            baseline=s.best,
            note=f"pages of {PAGE_ROWS:,} rows; best of {REPEATS}",
        ),
    ]


def run() -> list[Result]:
    return _query(common.large_workspace())


if __name__ == "__main__":
    common.print_table(run())
