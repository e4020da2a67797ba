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

Run: ``python -m bench spark`` (the data files are shared with ``bench/stores.py``).
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import Result, Target, lift_row_budgets, run_and_print  # noqa: E402
from bench.stores import (  # noqa: E402
    COLUMNS,
    DATA_DIR,
    ROWS,
    Governed,
    best_of,
    events_file,
    governed_workspace,
    partitioned_dir,
    read_results,
)

CONFIG = """\
gateway:
  listen: 127.0.0.1:8790
  state_url: sqlite:///state.db
  key_dir: keys
  master_key: file:keys/master.key
  max_rows_per_request: {rows}
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
NAMES = ("row_id", "part", "identifier", "event_date", "category", "amount")


def governed(url: str, token: str, single: Path, partitioned: Path) -> Governed:
    root = DATA_DIR / "spark-workspace"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    os.environ["KITELINE_BENCH_SPARK_TOKEN"] = token
    config_text = lift_row_budgets(
        CONFIG.format(
            rows=ROWS,
            url=url,
            root=DATA_DIR,
            single=single.name,
            partitioned=partitioned.name,
            columns=COLUMNS.rstrip("\n"),
        )
    )
    return governed_workspace(root, config_text)


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

    single = events_file()
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

            times = best_of(
                {
                    "governed": lambda: bench.read("events_spark", everything),
                    "connector": connector_alone,
                    "plain": plain,
                }
            )
            results += read_results(
                "spark",
                times,
                plain="Spark Connect toArrow() of the same columns",
                connector="the Spark connector's scan of the same columns, before any governance",
            )
            before = lake.bytes_received
            bench.read("events_parts", everything)
            all_rows = lake.bytes_received - before
            one_part = {**everything, "where": [{"column": "part", "op": "=", "value": 7}]}
            before = lake.bytes_received
            sent = bench.read("events_parts", one_part)
            moved = lake.bytes_received - before
            results.append(
                Result(
                    "spark bytes moved, 1% of partitions",
                    moved,
                    "B",
                    baseline=table_bytes,
                    target=Target("ratio", "<=", 0.05),
                    note=(
                        f"baseline: the table's Parquet files; Arrow bytes of every row: "
                        f"{all_rows:,}; response was {sent:,} bytes"
                    ),
                )
            )
        finally:
            session.stop()
            bench.gateway.close()
    return results


def main() -> int:
    return run_and_print(run)


if __name__ == "__main__":
    sys.exit(main())
