"""A real `kiteline serve` on loopback for the client's tests, with a large dataset."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gateway.demo.workspace import Workspace

BIG_STUDIES = 120_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One `kiteline serve` process; ``stop()`` and ``start()`` again on the same port."""

    def __init__(self, config_path: Path, port: int | None = None) -> None:
        self.config_path = config_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "--config",
                str(self.config_path),
                "serve",
                "--port",
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.process.kill()
        output = self.process.communicate()[0].decode(errors="replace")
        pytest.fail(f"kiteline serve did not become ready:\n{output}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
        self.process = None


def enlarge_studies(workspace: Workspace, rows: int = BIG_STUDIES) -> None:
    """Grow the demo's studies to ``rows`` rows (unique study ids), so a read spans pages."""
    path = workspace.root / "data" / "imaging" / "studies.parquet"
    base = pq.read_table(path)
    copies = []
    for copy in range(-(-rows // base.num_rows)):
        ids = pc.binary_join_element_wise(base["study_id"], pa.scalar(f"-{copy}"), "")
        copies.append(base.set_column(0, "study_id", ids))
    pq.write_table(pa.concat_tables(copies).slice(0, rows), path)


def raise_row_budgets(workspace: Workspace, per_day: int = 10_000_000) -> None:
    """The demo's daily row budget (100,000) would stop a test reading 120,000 rows."""
    text = workspace.config_path.read_text(encoding="utf-8")
    budgets = f"budgets:\n  rows_per_day: {per_day}\n  rows_total: {per_day}\n"
    workspace.config_path.write_text(text.rstrip("\n") + "\n\n" + budgets, encoding="utf-8")


@pytest.fixture
def served(workspace: Workspace) -> Iterator[Server]:
    enlarge_studies(workspace)
    raise_row_budgets(workspace)
    server = Server(workspace.config_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
