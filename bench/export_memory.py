"""Peak memory of the serving process during a bulk export or one governed read, by size.

A bulk Parquet export through the client (``kiteline query -o out.parquet`` does the
same): pages of 100,000 rows over every row of the large workspace at 1,000,000,
4,000,000 and 8,000,000 rows, each from a freshly started ``kiteline serve``. The
figure is the server's peak resident memory (``VmHWM`` in ``/proc/<pid>/status``)
after the export; a sampler also notes the resident memory every 50 ms, so the table
says when the peak came (``peak_at``: the share of the export's time that had passed).
Target: each peak at most 1.2x the one before, memory bounded by batches, not rows.
``--quick`` runs 1M and 2M only. ``python -m bench.export_memory 4000000`` measures one
size, for a profile of its own.

The second measurement is one governed read of every row as a single Arrow stream (no
pages), at 1M and 16M rows (``--quick``: 1M and 2M), each from a fresh server; the
client counts the rows of each batch as it arrives and drops it. Target: flat, the 16M
peak at most 1.2x the 1M peak.

The 1M file is small enough for the local connector's bounded file cache (decoded in
memory once, kept), the larger ones are scanned by DuckDB page by page.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
from kiteline_client import Client

from bench import common
from bench.client_query import COLUMNS, serve
from bench.common import Result, Target

PAGE_ROWS = 100_000
RSS_TARGET = Target("ratio", "<=", 1.2)
SAMPLE_S = 0.05


def _status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc status")


class _Sampler(threading.Thread):
    """Resident memory of ``pid`` every ``SAMPLE_S``: when the peak came."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append((time.monotonic(), _status_mib(self.pid, "VmRSS")))
            self.done.wait(SAMPLE_S)

    def peak_at(self) -> float:
        start, end = self.samples[0][0], self.samples[-1][0]
        moment = max(self.samples, key=lambda s: s[1])[0]
        return (moment - start) / max(end - start, 1e-9)


def export_peak(rows: int, out: Path) -> tuple[float, float, float]:
    """(peak MiB, resident MiB after start, share of the export when the peak came)."""
    workspace = common.large_workspace(f"client_export_{rows // 1_000_000}m", rows=rows)
    with serve(workspace, f"client_export_{rows}") as server:
        pid = server.process.pid
        idle = _status_mib(pid, "VmRSS")
        sampler = _Sampler(pid)
        sampler.start()
        with Client(server.url, workspace.token, page_rows=PAGE_ROWS, timeout=300) as client:
            writer = None
            for batch in client.iter_batches(workspace.dataset, columns=list(COLUMNS)):
                if writer is None:
                    writer = pq.ParquetWriter(out, batch.schema)
                writer.write_batch(batch)
            if writer is not None:
                writer.close()
        sampler.done.set()
        sampler.join()
        peak = _status_mib(pid, "VmHWM")
    written = pq.ParquetFile(out).metadata.num_rows
    if written != rows:
        raise RuntimeError(f"exported {written} rows of {rows}")
    return peak, idle, sampler.peak_at()


def read_peak(rows: int) -> tuple[float, float, float]:
    """``export_peak`` for one governed read of every row, in one answer."""
    workspace = common.large_workspace(f"governed_read_{rows}", rows=rows)
    with serve(workspace, f"read_memory_{rows}") as server:
        pid = server.process.pid
        idle = _status_mib(pid, "VmRSS")
        sampler = _Sampler(pid)
        sampler.start()
        received = 0
        with Client(server.url, workspace.token, page_rows=rows, timeout=600) as client:
            for batch in client.iter_batches(workspace.dataset, columns=list(COLUMNS)):
                received += batch.num_rows
        sampler.done.set()
        sampler.join()
        peak = _status_mib(pid, "VmHWM")
    if received != rows:
        raise RuntimeError(f"read {received} rows of {rows}")
    return peak, idle, sampler.peak_at()


def read_results() -> list[Result]:
    small, large = (1_000_000, 2_000_000) if common.quick() else (1_000_000, 16_000_000)
    small_peak, small_idle, _ = read_peak(small)
    large_peak, large_idle, at = read_peak(large)
    label = f"{large // 1_000_000}M"
    return [
        Result(
            "read_memory.arrow_1M.server_peak_rss",
            small_peak,
            "MiB",
            note=f"one governed Arrow read of every row; {small_idle:.0f} MiB after start",
        ),
        Result(
            f"read_memory.arrow_{label}.server_peak_rss",
            large_peak,
            "MiB",
            baseline=small_peak,
            target=RSS_TARGET,
            row="rss",
            note=f"one governed Arrow read of every row; {large_idle:.0f} MiB after start; "
            f"peak at {at:.0%}; baseline = the 1M read's peak",
        ),
    ]


def run() -> list[Result]:
    sizes = (1_000_000, 2_000_000) if common.quick() else (1_000_000, 4_000_000, 8_000_000)
    results: list[Result] = read_results()
    previous: float | None = None
    with tempfile.TemporaryDirectory() as folder:
        for rows in sizes:
            peak, idle, at = export_peak(rows, Path(folder) / f"{rows}.parquet")
            name = f"export_memory.parquet_{rows // 1_000_000}M.server_peak_rss"
            note = f"pages of {PAGE_ROWS:,} rows; {idle:.0f} MiB after start; peak at {at:.0%}"
            if previous is None:
                results.append(Result(name, peak, "MiB", note=note))
            else:
                results.append(
                    Result(name, peak, "MiB", baseline=previous, target=RSS_TARGET, note=note)
                )
            previous = peak
    return results


if __name__ == "__main__":
    if len(sys.argv) > 1:
        with tempfile.TemporaryDirectory() as folder:
            rows = int(sys.argv[1])
            print(export_peak(rows, Path(folder) / "out.parquet"))
    else:
        common.print_table(run())
