"""A real `kiteline serve` on loopback for the client's tests, with a large dataset."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gateway.demo.workspace import Workspace
from tests.serving import free_port, serve_command, stop, wait_until_ready

BIG_STUDIES = 120_000


class Server:
    """One `kiteline serve` process; ``stop()`` and ``start()`` again on the same port."""

    def __init__(self, config_path: Path, port: int | None = None) -> None:
        self.config_path = config_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = config_path.with_name(f"serve-{self.port}.log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> None:
        with self.log.open("ab") as sink:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                serve_command(self.config_path, self.port), stdout=sink, stderr=subprocess.STDOUT
            )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.process is not None
        try:
            wait_until_ready(
                f"{self.url}/readyz",
                self.process,
                lambda: self.log.read_text(errors="replace")[-5000:],
                timeout,
            )
        except AssertionError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process is None:
            return
        stop(self.process, timeout=15)
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
