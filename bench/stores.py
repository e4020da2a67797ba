"""Governed reads from the hosted stores against plain reads of the same data, same run.

* S3: moto's S3-protocol server on loopback holds 1M rows as one Parquet object and as
  a Hive-partitioned prefix (100 partitions). A governed read of every row (an employee
  under the pseudonymized profile: identifiers become keyed pseudonyms, the response is
  an Arrow IPC stream) is timed against ``pyarrow.parquet.read_table`` of the same
  object through pyarrow's S3 client.
* PostgreSQL: the same rows in a table; the governed read is timed against
  ``COPY (SELECT ...) TO STDOUT`` through psycopg.
* Pushdown: the bytes the S3 connector fetched for a governed query whose filter
  selects 1 of the 100 partitions, against the size of the whole prefix.

Both reads of a pair run interleaved in one process; the reported ratio is best
governed time over best plain time. Data files live in ``bench/.data/stores/`` and are
reused; the moto server and the PostgreSQL schema exist only during the run.
``KITELINE_TEST_PG_URL`` names the database (default
``postgresql://postgres@127.0.0.1:5432/test``); without one, the PostgreSQL rows are
skipped.

Run: ``python bench/stores.py`` (or ``python -m bench stores`` where the runner exists).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

DATA_DIR = BENCH_DIR / ".data" / "stores"
ROWS = 1_000_000
PARTITIONS = 100
REPEATS = 3
PG_URL_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
BUCKET = "bench"

from bench.common import Result, Target, lift_row_budgets, run_and_print  # noqa: E402
from bench.workspaces import gateway_section, reader_workspace  # noqa: E402

CONFIG = (
    gateway_section(8789)
    + """\
stores:
  lake:
    kind: s3
    endpoint_url: {endpoint}
    bucket: {bucket}
    region: us-east-1
    path_style: true
    access_key_id: env:KITELINE_BENCH_S3_KEY
    secret_access_key: env:KITELINE_BENCH_S3_SECRET
{pg_store}
modules:
  events:
    custodians: [ben, cyd]
datasets:
{datasets}
"""
)

PG_STORE = """\
  warehouse:
    kind: postgres
    url: env:KITELINE_BENCH_PG_URL
    statement_timeout_ms: 600000
"""

COLUMNS = """\
    columns:
      row_id: public
      part: public
      identifier: {class: identifier, domain: subject}
      event_date: quasi_identifier
      category: public
      amount: sensitive
"""


# -- data ------------------------------------------------------------------------------


def events_file() -> Path:
    """1M seeded rows as one Parquet file (100k-row groups), made once and reused."""
    path = DATA_DIR / f"events-{ROWS}-{PARTITIONS}.parquet"
    if path.exists():
        return path
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(11)
    distinct = ROWS // 10
    ids = pa.array([f"U{i:07d}" for i in range(distinct)])
    table = pa.table(
        {
            "row_id": pa.array(np.arange(ROWS, dtype=np.int64)),
            "part": pa.array((np.arange(ROWS) % PARTITIONS).astype(np.int32)),
            "identifier": ids.take(pa.array(rng.integers(0, distinct, ROWS))),
            "event_date": pa.array((rng.integers(0, 3650, ROWS) + 16_000).astype(np.int32)).view(
                pa.date32()
            ),
            "category": pa.array(["alpha", "beta", "gamma", "delta"]).take(
                pa.array(rng.integers(0, 4, ROWS))
            ),
            "amount": pa.array(np.round(rng.gamma(2.0, 50.0, ROWS), 2)),
        }
    )
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    pq.write_table(table, partial, row_group_size=100_000)
    partial.rename(path)
    return path


def partitioned_dir(source: Path) -> Path:
    """The same rows, Hive-partitioned by ``part`` (one folder per value)."""
    target = DATA_DIR / f"events-by-part-{ROWS}-{PARTITIONS}"
    if target.exists():
        return target
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    ds.write_dataset(
        pq.read_table(source),
        partial,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("part", pa.int32())]), flavor="hive"),
    )
    partial.rename(target)
    return target


# -- stores ----------------------------------------------------------------------------


@dataclass
class S3Site:
    endpoint: str
    key: str
    secret: str
    prefix_bytes: int

    def filesystem(self) -> Any:
        import pyarrow.fs as pafs

        scheme, _, host = self.endpoint.partition("://")
        return pafs.S3FileSystem(
            access_key=self.key,
            secret_key=self.secret,
            region="us-east-1",
            scheme=scheme,
            endpoint_override=host,
            allow_bucket_creation=True,
        )


@contextmanager
def s3_site(single: Path, partitioned: Path) -> Iterator[S3Site]:
    from gateway.demo.hosted_stores import s3_server

    with s3_server(DATA_DIR / "moto.log") as endpoint:
        site = S3Site(endpoint, "bench-key", "bench-secret", 0)
        fs = site.filesystem()
        fs.create_dir(BUCKET)
        uploads = [(single, "events.parquet")]
        uploads += [
            (path, "events_by_part/" + path.relative_to(partitioned).as_posix())
            for path in sorted(partitioned.rglob("*.parquet"))
        ]
        for path, key in uploads:
            with fs.open_output_stream(f"{BUCKET}/{key}") as out:
                out.write(path.read_bytes())
        site.prefix_bytes = sum(p.stat().st_size for p in partitioned.rglob("*.parquet"))
        yield site


@contextmanager
def pg_site(single: Path) -> Iterator[tuple[str, str] | None]:
    """A schema holding the events table; None when no PostgreSQL answers."""
    import psycopg
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from psycopg import sql

    from tests.pg_schemas import private_schema  # the tests' schema, made and dropped

    url = os.environ.get("KITELINE_TEST_PG_URL", PG_URL_DEFAULT)
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        print(f"PostgreSQL not reachable ({type(exc).__name__}): skipping its rows")
        yield None
        return
    schema = f"kl_bench_{uuid.uuid4().hex[:8]}"
    table = sql.Identifier(schema, "events")
    with private_schema(url, schema):
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(
                sql.SQL(
                    "CREATE TABLE {} (row_id bigint, part integer, identifier text, "
                    "event_date date, category text, amount double precision)"
                ).format(table)
            )
            csv_path = DATA_DIR / "events.csv"
            pacsv.write_csv(pq.read_table(single), csv_path)
            with connection.cursor() as cursor:
                copy_in = sql.SQL("COPY {} FROM STDIN (FORMAT csv, HEADER true)").format(table)
                with cursor.copy(copy_in) as copy, csv_path.open("rb") as source:
                    while chunk := source.read(1 << 20):
                        copy.write(chunk)
            csv_path.unlink()
            connection.execute(sql.SQL("ANALYZE {}").format(table))
        yield url, schema


# -- the gateway -----------------------------------------------------------------------


@dataclass
class Governed:
    gateway: Any
    caller: Any

    def read(self, dataset: str, body: dict[str, Any]) -> int:
        """Drain one governed read as an Arrow IPC stream; returns the bytes sent."""
        import orjson

        from gateway.auditing.log import RequestMeta

        meta = RequestMeta(request_id=uuid.uuid4().hex, client="bench", user_agent="bench")
        result = self.gateway.read(
            self.caller, dataset, orjson.dumps(body), "application/vnd.apache.arrow.stream", meta
        )
        return sum(len(chunk) for chunk in result.chunks)


def governed(site: S3Site, pg: tuple[str, str] | None) -> Governed:
    root = DATA_DIR / "workspace"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    datasets = [
        "  events_s3:\n    module: events\n    store: lake\n    location: events.parquet\n"
        + COLUMNS,
        "  events_parts:\n    module: events\n    store: lake\n    location: events_by_part\n"
        "    options: {partitioning: hive}\n" + COLUMNS,
    ]
    if pg is not None:
        datasets.append(
            f"  events_pg:\n    module: events\n    store: warehouse\n"
            f"    location: {pg[1]}.events\n    format: table\n" + COLUMNS
        )
        os.environ["KITELINE_BENCH_PG_URL"] = pg[0]
    os.environ["KITELINE_BENCH_S3_KEY"] = site.key
    os.environ["KITELINE_BENCH_S3_SECRET"] = site.secret
    # A full read of 1M rows, several times over, would spend the default daily budget.
    config_text = lift_row_budgets(
        CONFIG.format(
            rows=ROWS,
            endpoint=site.endpoint,
            bucket=BUCKET,
            pg_store=PG_STORE if pg is not None else "",
            datasets="".join(datasets),
        )
    )
    return governed_workspace(root, config_text)


def governed_workspace(root: Path, config_text: str) -> Governed:
    """A gateway over ``root`` configured by ``config_text``, and its one caller: an
    employee ``ada`` holding an active pseudonymized grant on the ``events`` module
    whose row cap covers every row."""
    from gateway.service import Gateway

    config, token = reader_workspace(root, config_text, rows=ROWS, days=30, module="events")
    gateway = Gateway.from_config(config)
    return Governed(gateway, gateway.authenticate(f"Bearer {token}", _meta()))


# One partition of the hundred the partitioned copy has.
ONE_PARTITION = [{"column": "part", "op": "=", "value": 7}]


def one_partition_result(label: str, moved: int, baseline: int, note: str) -> Result:
    """The bytes a read of ``ONE_PARTITION`` moved, against the whole data's (5% at most)."""
    return Result(
        f"{label}, 1% of partitions",
        moved,
        "B",
        baseline=baseline,
        target=Target("ratio", "<=", 0.05),
        note=note,
    )


def read_results(
    store: str,
    times: dict[str, float],
    *,
    plain: str,
    connector: str,
    connector_label: str = "connector scan alone, 1M rows",
    row: str = "",
) -> list[Result]:
    """The governed read against the plain one, and the connector's scan alone."""
    return [
        Result(
            f"{store} governed read, 1M rows",
            times["governed"],
            "s",
            baseline=times["plain"],
            target=Target("ratio", "<=", 1.5),
            note=f"baseline: {plain}",
            row=row,
        ),
        Result(
            f"{store} {connector_label}",
            times["connector"],
            "s",
            baseline=times["plain"],
            note=connector,
        ),
    ]


def _meta() -> Any:
    from gateway.auditing.log import RequestMeta

    return RequestMeta(request_id=uuid.uuid4().hex, client="bench", user_agent="bench")


# -- measuring -------------------------------------------------------------------------


def best_of(subjects: dict[str, Callable[[], object]], repeats: int = REPEATS) -> dict[str, float]:
    """Best wall time of each subject, alternating between them after one warm-up each."""
    for fn in subjects.values():
        fn()
    best = {name: float("inf") for name in subjects}
    for _ in range(repeats):
        for name, fn in subjects.items():
            started = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def drain(connector: Any, location: str, file_format: Any) -> int:
    """Rows of one ungoverned connector scan of every column."""
    from connectors.base import Scan, Table

    table = Table(location=location, format=file_format)
    columns = tuple(connector.schema(table).names)
    return sum(batch.num_rows for batch in connector.scan(table, Scan(columns=columns)))


def run() -> list[Result]:
    single = events_file()
    partitioned = partitioned_dir(single)
    with s3_site(single, partitioned) as site, pg_site(single) as pg:
        bench = governed(site, pg)
        try:
            results = s3_results(bench, site)
            if pg is not None:
                results += postgres_results(bench, *pg)
        finally:
            bench.gateway.close()
    return results


def s3_results(bench: Governed, site: S3Site) -> list[Result]:
    """A governed read of every row against pyarrow's own, and the bytes fetched for a
    read of one partition."""
    import pyarrow.parquet as pq

    fs = site.filesystem()

    def plain_s3() -> object:
        return pq.read_table(f"{BUCKET}/events.parquet", filesystem=fs)

    lake = bench.gateway.connectors["lake"]
    times = best_of(
        {
            "governed": lambda: bench.read("events_s3", {"limit": ROWS}),
            "connector": lambda: drain(lake, "events.parquet", "parquet"),
            "plain": plain_s3,
        }
    )
    results = read_results(
        "s3",
        times,
        plain="pyarrow.parquet.read_table over pyarrow's S3 client",
        connector="the S3 connector's scan of every column, before any governance",
        row="s3_read",
    )
    before = lake.bytes_read
    sent = bench.read("events_parts", {"where": ONE_PARTITION, "limit": ROWS})
    fetched = lake.bytes_read - before
    note = f"baseline: the whole prefix; response was {sent:,} bytes"
    results.append(one_partition_result("s3 bytes fetched", fetched, site.prefix_bytes, note))
    return results


def postgres_results(bench: Governed, url: str, schema: str) -> list[Result]:
    """A governed read of every row against psycopg's COPY of the same table."""
    import psycopg
    from psycopg import sql

    copy_query = sql.SQL("COPY (SELECT * FROM {}) TO STDOUT").format(
        sql.Identifier(schema, "events")
    )

    def plain_pg() -> object:
        received = 0
        with psycopg.connect(url) as connection, connection.cursor() as cursor:
            with cursor.copy(copy_query) as copy:
                for data in copy:
                    received += len(data)
        return received

    warehouse = bench.gateway.connectors["warehouse"]
    times = best_of(
        {
            "governed": lambda: bench.read("events_pg", {"limit": ROWS}),
            "connector": lambda: drain(warehouse, f"{schema}.events", "table"),
            "plain": plain_pg,
        }
    )
    return read_results(
        "postgres",
        times,
        plain="psycopg COPY (SELECT *) TO STDOUT, text format, "
        "bytes only (not yet the fastest plain Arrow read)",
        connector="the PostgreSQL connector's scan of every column, no governance",
        connector_label="connector scan alone",
        row="pg_read",
    )


def main() -> int:
    return run_and_print(run)


if __name__ == "__main__":
    sys.exit(main())
