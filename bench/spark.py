"""Governed reads through Spark Connect against plain Spark Connect reads, same run.

A local Spark Connect server (pyspark's own, ``local[2]``, 1 GiB heap) reads the 1M
seeded rows of ``bench/stores.py`` as one Parquet file and as a Hive-partitioned
folder (100 partitions).

* Read: a governed read of every row (an employee under the pseudonymized profile:
  identifiers become keyed pseudonyms, the answer is an Arrow IPC stream) is timed
  against ``spark.read.parquet(...).select(<the same columns>).toArrow()`` through
  its own Spark Connect session. Both run interleaved; the ratio is best over best.
* Pushdown: the Arrow bytes Spark sent the gateway for a governed query whose filter
  selects 1 of the 100 partitions, against the size of the whole table (its Parquet
  files on disk), and against the Arrow bytes of a read of every row.

* Memory: the peak resident memory (VmHWM) of a real ``kiteline serve`` while it
  serves one governed read of 1M rows, then of 4M rows (each from a freshly started
  gateway, the same 100,000 distinct identifiers), streamed as Arrow over loopback
  and written to a file by the client. Target: the 4M peak at most 1.2x the 1M one.

Run: ``python -m bench spark`` (the data files are shared with ``bench/stores.py``);
``python bench/spark.py --memory`` runs the memory part alone.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import common  # noqa: E402
from bench.common import (  # noqa: E402
    Result,
    Target,
    interleaved,
    lift_row_budgets,
    print_table,
)
from bench.stores import (  # noqa: E402
    COLUMNS,
    DATA_DIR,
    ONE_PARTITION,
    REPEATS,
    ROWS,
    Governed,
    _meta,
    events_file,
    one_partition_result,
    partitioned_dir,
    read_results,
)
from bench.workspaces import gateway_section, reader_workspace  # noqa: E402

CONFIG = (
    gateway_section(8790)
    + """\
stores:
  lake:
    kind: spark
    url: {url}
    token: env:KITELINE_BENCH_SPARK_TOKEN
    tls: false
    root: {root}
modules:
  events:
    custodians: [ben, cyd]
datasets:
  events_spark:
    module: events
    store: lake
    location: {single}
{columns}
  events_parts:
    module: events
    store: lake
    location: {partitioned}
{columns}
"""
)
# The same gateway and store, with one dataset per size read for memory.
MEMORY_CONFIG = CONFIG.split("datasets:\n")[0] + "datasets:\n{datasets}\n"
NAMES = ("row_id", "part", "identifier", "event_date", "category", "amount")
MEMORY_SIZES = (1_000_000, 4_000_000)
MEMORY_DISTINCT = 100_000
MEMORY_TARGET = Target("ratio", "<=", 1.2)
ARROW = "application/vnd.apache.arrow.stream"


def workspace(root: Path, config_text: str, rows: int, token: str) -> str:
    """A fresh workspace under ``root`` whose employee ``ada`` holds a pseudonymized
    grant on the ``events`` module covering ``rows``; her API key."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    os.environ["KITELINE_BENCH_SPARK_TOKEN"] = token
    config_text = lift_row_budgets(config_text)
    return reader_workspace(root, config_text, rows=rows, days=30, module="events")[1]


def governed(url: str, token: str, single: Path, partitioned: Path) -> Governed:
    from gateway.config import load_config
    from gateway.service import Gateway

    root = DATA_DIR / "spark-workspace"
    config_text = CONFIG.format(
        rows=ROWS,
        url=url,
        root=DATA_DIR,
        single=single.name,
        partitioned=partitioned.name,
        columns=COLUMNS.rstrip("\n"),
    )
    key = workspace(root, config_text, ROWS, token)
    gateway = Gateway.from_config(load_config(root / "kiteline.yaml"))
    return Governed(gateway, gateway.authenticate(f"Bearer {key}", _meta()))


def _memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _streamed_read(url: str, key: str, dataset: str, rows: int, out: Path) -> int:
    """One governed read of ``rows`` rows as an Arrow stream, written to ``out`` as it
    arrives; the rows the answer held."""
    import httpx
    import pyarrow as pa

    with httpx.Client(base_url=url, timeout=600) as http, out.open("wb") as sink:
        with http.stream(
            "POST",
            f"/v1/datasets/{dataset}/query",
            json={"columns": list(NAMES[:1] + NAMES[2:]), "limit": rows},
            headers={"Authorization": f"Bearer {key}", "Accept": ARROW},
        ) as answer:
            if answer.status_code != 200:
                raise RuntimeError(f"{dataset}: {answer.status_code} {answer.read()[:500]!r}")
            for chunk in answer.iter_raw():
                sink.write(chunk)
    with pa.memory_map(str(out)) as source:
        return sum(batch.num_rows for batch in pa.ipc.open_stream(source))


def memory_workspace(url: str, token: str) -> tuple[Path, str]:
    """A workspace with one dataset per size of ``MEMORY_SIZES``; its root and key."""
    datasets = []
    for rows in MEMORY_SIZES:
        path = DATA_DIR / f"events-flat-{rows}-{MEMORY_DISTINCT}.parquet"
        if not path.exists():
            common.write_events(path, rows=rows, distinct=MEMORY_DISTINCT, seed=5)
        datasets.append(
            f"  events_{rows // 1_000_000}m:\n    module: events\n    store: lake\n"
            f"    location: {path.name}\n" + COLUMNS.replace("      part: public\n", "").rstrip()
        )
    root = DATA_DIR / "spark-memory-workspace"
    config_text = MEMORY_CONFIG.format(
        rows=max(MEMORY_SIZES), url=url, root=DATA_DIR, datasets="\n".join(datasets)
    )
    return root, workspace(root, config_text, sum(MEMORY_SIZES) + 100, token)


def served_peak(root: Path, key: str, rows: int) -> tuple[float, float]:
    """A fresh ``kiteline serve`` reads ``rows`` rows once: its RSS after a warm-up
    read and its peak RSS (MiB)."""
    dataset = f"events_{rows // 1_000_000}m"
    port = common.free_port()
    command = [
        sys.executable, "-m", "gateway.cli", "--config", str(root / "kiteline.yaml"),
        "--log-level", "WARNING", "serve", "--port", str(port),
    ]  # fmt: skip
    log_path = common.DATA_DIR / "logs" / f"spark_memory_{rows}.log"
    with common.served(command, port=port, log_path=log_path) as server:
        pid = server.process.pid
        # A first small read opens the Spark session and plans once.
        _streamed_read(server.url, key, dataset, 10, root / "warm.arrows")
        warm = _memory_kib(pid, "VmRSS") / 1024
        got = _streamed_read(server.url, key, dataset, rows, root / "answer.arrows")
        peak = _memory_kib(pid, "VmHWM") / 1024
    (root / "answer.arrows").unlink()
    if got != rows:
        raise RuntimeError(f"{dataset}: the answer held {got:,} rows of {rows:,}")
    return warm, peak


def memory(url: str, token: str) -> list[Result]:
    """Peak RSS of a served gateway reading each of ``MEMORY_SIZES`` from Spark."""
    root, key = memory_workspace(url, token)
    peaks = {rows: served_peak(root, key, rows) for rows in MEMORY_SIZES}
    first = MEMORY_SIZES[0]
    results = [
        Result(
            f"spark served read, {first // 1_000_000}M rows, gateway peak RSS",
            peaks[first][1],
            "MiB",
            note=f"RSS after a 10-row warm-up read: {peaks[first][0]:.0f} MiB",
        )
    ]
    for before, rows in zip(MEMORY_SIZES, MEMORY_SIZES[1:], strict=False):
        results.append(
            Result(
                f"spark served read, {rows // 1_000_000}M rows, gateway peak RSS",
                peaks[rows][1],
                "MiB",
                baseline=peaks[before][1],
                target=MEMORY_TARGET,
                note=f"RSS after a 10-row warm-up read: {peaks[rows][0]:.0f} MiB; "
                f"baseline: the {before // 1_000_000}M read's peak",
            )
        )
    return results


def plain_session(url: str, token: str) -> Any:
    """A Spark Connect session of its own, as any Spark user would open one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pyspark.sql.connect.session import SparkSession
    port = url.rsplit(":", 1)[1]
    # pyspark sends a token without TLS only to "localhost" (gRPC local credentials).
    return SparkSession(connection=f"sc://localhost:{port}/;token={token}")


def run() -> list[Result]:
    from gateway.demo.spark import spark_connect_server

    single = events_file(ROWS)
    partitioned = partitioned_dir(single)
    table_bytes = sum(p.stat().st_size for p in partitioned.rglob("*.parquet"))
    results: list[Result] = []
    with spark_connect_server(DATA_DIR / f"spark-{uuid.uuid4().hex[:6]}") as server:
        bench = governed(server.url, server.token, single, partitioned)
        session = plain_session(server.url, server.token)
        try:
            everything = {"columns": list(NAMES), "limit": ROWS}

            def plain() -> object:
                return session.read.parquet(str(single)).select(*NAMES).toArrow()

            lake = bench.gateway.connectors["lake"]

            def connector_alone() -> int:
                from connectors import Scan, Table

                scan = lake.scan(Table(single.name), Scan(columns=NAMES))
                return sum(batch.num_rows for batch in scan)

            times = interleaved(
                {
                    "governed": lambda: bench.read("events_spark", everything),
                    "connector": connector_alone,
                    "plain": plain,
                },
                repeats=REPEATS,
            )
            results += read_results(
                "spark",
                times,
                rows=ROWS,
                what=f"{len(NAMES)} columns",
                plain="Spark Connect toArrow() of the same columns",
                connector="the Spark connector's scan of the same columns, before any governance",
            )
            before = lake.bytes_received
            bench.read("events_parts", everything)
            all_rows = lake.bytes_received - before
            before = lake.bytes_received
            sent = bench.read("events_parts", {**everything, "where": ONE_PARTITION})
            moved = lake.bytes_received - before
            note = (
                f"baseline: the table's Parquet files; Arrow bytes of every row: "
                f"{all_rows:,}; response was {sent:,} bytes"
            )
            results.append(one_partition_result("spark bytes moved", moved, table_bytes, note))
        finally:
            session.stop()
            bench.gateway.close()
        results.extend(memory(server.url, server.token))
    return results


def memory_alone() -> list[Result]:
    from gateway.demo.spark import spark_connect_server

    with spark_connect_server(DATA_DIR / f"spark-{uuid.uuid4().hex[:6]}") as server:
        return memory(server.url, server.token)


def main() -> int:
    started = time.perf_counter()
    results = memory_alone() if "--memory" in sys.argv[1:] else run()
    print()
    print_table(results)
    print(f"\n({time.perf_counter() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
