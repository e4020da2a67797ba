"""kiteline-client against the server's own governed read, and bulk export memory.

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

``export_rss``: a bulk Parquet export through the client (``kiteline query -o
out.parquet`` does the same), pages of 100,000 rows, of 1,000,000, 4,000,000 and
8,000,000 rows, each from a freshly started server; the server's peak resident memory
(VmHWM) after each. Target: each peak at most 1.2x the one before. The 1M file is
small enough for the local connector's bounded file cache (it is held decoded in
memory), the larger ones are scanned by DuckDB: 8M against 4M compares one path.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import httpx
import pyarrow.parquet as pq
from kiteline_client import Client

from bench import common
from bench.common import DATA_DIR, LargeWorkspace, Result, Target
from bench.governed_read import COLUMNS, governed_reader, open_gateway

ARROW = "application/vnd.apache.arrow.stream"
REPEATS = 3
PAGE_ROWS = 100_000
QUERY_TARGET = Target("ratio", "<=", 1.2)
RSS_TARGET = Target("ratio", "<=", 1.2)


def _serve(
    workspace: LargeWorkspace, name: str
) -> contextlib.AbstractContextManager[common.Served]:
    port = common.free_port()
    command = [
        sys.executable, "-m", "gateway.cli", "--config", str(workspace.config_path),
        "--log-level", "WARNING", "serve", "--port", str(port),
    ]  # fmt: skip
    return common.served(command, port=port, log_path=DATA_DIR / "logs" / f"{name}.log")


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


def _query(workspace: LargeWorkspace) -> list[Result]:
    gateway = open_gateway(workspace)
    try:
        with _serve(workspace, "client_query") as server:
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
                    "paged": client_paged,
                },
                repeats=REPEATS,
            )
            for http in (one_page, paged, bare):
                http.close()
    finally:
        gateway.close()
    s, c, p, b = (timings[k] for k in ("server", "client", "paged", "bare"))
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
            "client_query.arrow_1M_rows.paged",
            p.best,
            "s",
            baseline=s.best,
            note=f"pages of {PAGE_ROWS:,} rows; best of {REPEATS}",
        ),
    ]


def _export_peak(workspace: LargeWorkspace, out: Path) -> float:
    with _serve(workspace, f"client_export_{workspace.rows}") as server:
        with Client(server.url, workspace.token, page_rows=PAGE_ROWS, timeout=300) as client:
            writer = None
            for batch in client.iter_batches(workspace.dataset, columns=list(COLUMNS)):
                if writer is None:
                    writer = pq.ParquetWriter(out, batch.schema)
                writer.write_batch(batch)
            if writer is not None:
                writer.close()
        peak = _peak_rss_mib(server.process.pid)
    rows = pq.ParquetFile(out).metadata.num_rows
    if rows != workspace.rows:
        raise RuntimeError(f"exported {rows} rows of {workspace.rows}")
    return peak


def _export() -> list[Result]:
    sizes = (1_000_000, 4_000_000, 8_000_000)
    peaks = []
    with tempfile.TemporaryDirectory() as folder:
        for rows in sizes:
            workspace = common.large_workspace(f"client_export_{rows // 1_000_000}m", rows=rows)
            peaks.append(_export_peak(workspace, Path(folder) / f"{rows}.parquet"))
    results = [Result("client_export.parquet_1M.server_peak_rss", peaks[0], "MiB")]
    for i in (1, 2):
        results.append(
            Result(
                f"client_export.parquet_{sizes[i] // 1_000_000}M.server_peak_rss",
                peaks[i],
                "MiB",
                baseline=peaks[i - 1],
                target=RSS_TARGET,
                note=f"pages of {PAGE_ROWS:,} rows; baseline = the "
                f"{sizes[i - 1] // 1_000_000}M export's peak",
            )
        )
    return results


def run() -> list[Result]:
    return _query(common.large_workspace()) + _export()


if __name__ == "__main__":
    common.print_table(run())
