"""Governed reads from the hosted stores against plain Arrow reads of the same columns.

The read of the issue's targets: four columns of a seeded table, ``identifier`` (an
identifier: a keyed pseudonym under the pseudonymized profile), ``email`` (a direct
identifier: masked, ``u***@example.com``), ``event_date`` (a date) and ``category``,
read by an employee under the pseudonymized profile as an Arrow IPC stream.

* S3: moto's S3-protocol server on loopback holds the rows as one Parquet object (with
  three more columns the read does not ask for) and, for the pushdown row, as a
  Hive-partitioned prefix (100 partitions). Baseline: ``pyarrow.dataset`` over the same
  object on the same server, ``to_table`` of the same four columns. 1M rows; 10M too
  with ``--10m`` (or ``KITELINE_BENCH_S3_10M=1``): the upload and moto's memory make
  that run long. The S3 server's CPU seconds during each subject are printed, since
  moto (Python) serves every byte and may be a large part of both times.
* PostgreSQL: the same 1M rows in a table. Baseline: the ADBC PostgreSQL driver's
  ``fetch_arrow_table`` of the same four columns (the fastest plain Arrow read;
  ``bench/postgres_read.py`` compares it with COPY and row tuples).
* Pushdown: the bytes the S3 connector fetched for a governed query whose filter
  selects 1 of the 100 partitions, against the size of the whole prefix.

Every subject of a pair runs interleaved in one process, one warm-up each, then
``REPEATS`` timed runs; the reported ratio is median governed time over median plain
time. Data files live in ``bench/.data/stores/`` and are reused; the moto server and
the PostgreSQL schema exist only during the run. ``KITELINE_TEST_PG_URL`` names the
database (default ``postgresql://postgres@127.0.0.1:5432/test``); without one, the
PostgreSQL rows are skipped.

Run: ``python bench/stores.py [--10m]`` or ``python -m bench stores``.
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
LARGE_ROWS = 10_000_000
PARTITIONS = 100
REPEATS = 3
PG_URL_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
BUCKET = "bench"
# The four columns of the governed read and of its baselines.
READ_COLUMNS = ["identifier", "email", "event_date", "category"]

from bench.common import (  # noqa: E402
    Result,
    Target,
    Timing,
    interleaved,
    lift_row_budgets,
    run_and_print,  # noqa: E402
)
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
      email: {class: direct_identifier, mask: email}
      event_date: quasi_identifier
      category: public
      amount: sensitive
"""


# The governed read of the targets: the four columns, every row.
def read_body(rows: int) -> dict[str, Any]:
    return {"columns": READ_COLUMNS, "limit": rows}


# -- data ------------------------------------------------------------------------------


def events_file(rows: int) -> Path:
    """``rows`` seeded rows as one Parquet file (100k-row groups), made once and reused:
    one distinct identifier (and its email address) per ten rows."""
    path = DATA_DIR / f"events-v2-{rows}-{PARTITIONS}.parquet"
    if path.exists():
        return path
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(11)
    distinct = rows // 10
    ids = pa.array([f"U{i:08d}" for i in range(distinct)])
    domains = ["example.com", "mail.example.org", "corp.example.net", "uni.example.edu"]
    emails = pa.array([f"user.{i}@{domains[i % len(domains)]}" for i in range(distinct)])
    who = pa.array(rng.integers(0, distinct, rows))
    table = pa.table(
        {
            "row_id": pa.array(np.arange(rows, dtype=np.int64)),
            "part": pa.array((np.arange(rows) % PARTITIONS).astype(np.int32)),
            "identifier": ids.take(who),
            "email": emails.take(who),
            "event_date": pa.array((rng.integers(0, 3650, rows) + 16_000).astype(np.int32)).view(
                pa.date32()
            ),
            "category": pa.array(["alpha", "beta", "gamma", "delta"]).take(
                pa.array(rng.integers(0, 4, rows))
            ),
            "amount": pa.array(np.round(rng.gamma(2.0, 50.0, rows), 2)),
        }
    )
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    pq.write_table(table, partial, row_group_size=100_000)
    partial.rename(path)
    return path


def partitioned_dir(source: Path) -> Path:
    """The same rows, Hive-partitioned by ``part`` (one folder per value)."""
    target = DATA_DIR / (source.stem + "-by-part")
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
    server_pid: int | None = None

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

    def server_cpu_seconds(self) -> float | None:
        """User + system CPU seconds of the S3 server process so far."""
        if self.server_pid is None:
            return None
        try:
            stat = Path(f"/proc/{self.server_pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _child_pid(needle: str) -> int | None:
    """The pid of this process's child whose command line holds ``needle``."""
    me = os.getpid()
    for task in Path(f"/proc/{me}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in children:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if needle.encode() in cmdline:
                return int(pid)
    return None


@contextmanager
def s3_site(uploads: list[tuple[Path, str]], partitioned: Path) -> Iterator[S3Site]:
    from gateway.demo.hosted_stores import s3_server

    with s3_server(DATA_DIR / "moto.log") as endpoint:
        port = endpoint.rsplit(":", 1)[1]
        site = S3Site(endpoint, "bench-key", "bench-secret", 0, _child_pid(f"-p {port}"))
        fs = site.filesystem()
        fs.create_dir(BUCKET)
        uploads = uploads + [
            (path, "events_by_part/" + path.relative_to(partitioned).as_posix())
            for path in sorted(partitioned.rglob("*.parquet"))
        ]
        for path, key in uploads:
            with fs.open_output_stream(f"{BUCKET}/{key}") as out, path.open("rb") as source:
                while chunk := source.read(16 << 20):
                    out.write(chunk)
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
                    "email text, event_date date, category text, amount double precision)"
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
            connection.execute(sql.SQL("VACUUM ANALYZE {}").format(table))
        yield url, schema


# -- the gateway -----------------------------------------------------------------------


@dataclass
class Governed:
    gateway: Any
    caller: Any

    def read(self, dataset: str, body: dict[str, Any]) -> int:
        """Drain one governed read as an Arrow IPC stream; returns the bytes sent."""
        return sum(len(chunk) for chunk in self._chunks(dataset, body))

    def table(self, dataset: str, body: dict[str, Any]) -> Any:
        """One governed read, decoded (to check what the bench measures)."""
        import pyarrow as pa

        return pa.ipc.open_stream(b"".join(self._chunks(dataset, body))).read_all()

    def _chunks(self, dataset: str, body: dict[str, Any]) -> Iterator[bytes]:
        import orjson

        result = self.gateway.read(
            self.caller, dataset, orjson.dumps(body), "application/vnd.apache.arrow.stream", _meta()
        )
        chunks: Iterator[bytes] = result.chunks
        return chunks


def governed(site: S3Site, pg: tuple[str, str] | None, large: bool) -> Governed:
    root = DATA_DIR / "workspace"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    datasets = [
        f"  events_s3:\n    module: events\n    store: lake\n    location: events-{ROWS}.parquet\n"
        + COLUMNS,
        "  events_parts:\n    module: events\n    store: lake\n    location: events_by_part\n"
        "    options: {partitioning: hive}\n" + COLUMNS,
    ]
    if large:
        datasets.append(
            "  events_s3_large:\n    module: events\n    store: lake\n"
            f"    location: events-{LARGE_ROWS}.parquet\n" + COLUMNS
        )
    if pg is not None:
        datasets.append(
            f"  events_pg:\n    module: events\n    store: warehouse\n"
            f"    location: {pg[1]}.events\n    format: table\n" + COLUMNS
        )
        os.environ["KITELINE_BENCH_PG_URL"] = pg[0]
    os.environ["KITELINE_BENCH_S3_KEY"] = site.key
    os.environ["KITELINE_BENCH_S3_SECRET"] = site.secret
    most = LARGE_ROWS if large else ROWS
    # A full read of 1M rows, several times over, would spend the default daily budget.
    config_text = lift_row_budgets(
        CONFIG.format(
            rows=most,
            endpoint=site.endpoint,
            bucket=BUCKET,
            pg_store=PG_STORE if pg is not None else "",
            datasets="".join(datasets),
        )
    )
    return governed_workspace(root, config_text, rows=most)


def governed_workspace(root: Path, config_text: str, *, rows: int = ROWS) -> Governed:
    """A gateway over ``root`` configured by ``config_text``, and its one caller: an
    employee ``ada`` holding an active pseudonymized grant on the ``events`` module
    whose row cap covers ``rows``."""
    from gateway.service import Gateway

    config, token = reader_workspace(root, config_text, rows=rows, days=30, module="events")
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


def _label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows >= 1_000_000 else f"{rows // 1000}k"


def read_results(
    store: str,
    timings: dict[str, Timing],
    *,
    rows: int,
    plain: str,
    connector: str,
    row: str = "",
    extra: str = "",
    what: str = "4 columns",
) -> list[Result]:
    """The governed read against the plain one, and the connector's scan alone
    (medians)."""
    plain_s = timings["plain"].median
    runs = ", ".join(
        f"{name} {' / '.join(f'{t:.3f}' for t in timing.runs)} s"
        for name, timing in timings.items()
    )
    return [
        Result(
            f"{store} governed read, {_label(rows)} rows, {what}",
            timings["governed"].median,
            "s",
            baseline=plain_s,
            target=Target("ratio", "<=", 1.5),
            note=f"median of {REPEATS}; baseline: {plain}; runs: {runs}{extra}",
            row=row,
        ),
        Result(
            f"{store} connector scan alone, {_label(rows)} rows, {what}",
            timings["connector"].median,
            "s",
            baseline=plain_s,
            note=connector,
        ),
    ]


def _meta() -> Any:
    from gateway.auditing.log import RequestMeta

    return RequestMeta(request_id=uuid.uuid4().hex, client="bench", user_agent="bench")


# -- measuring -------------------------------------------------------------------------


def drain(connector: Any, location: str, file_format: Any) -> int:
    """Rows of one ungoverned connector scan of the four columns."""
    from connectors.base import Scan, Table

    table = Table(location=location, format=file_format)
    scan = Scan(columns=tuple(READ_COLUMNS))
    return sum(batch.num_rows for batch in connector.scan(table, scan))


def with_cpu(
    site: S3Site | None, subjects: dict[str, Callable[[], object]]
) -> tuple[dict[str, Callable[[], object]], Callable[[], str]]:
    """``subjects`` wrapped to record, per run, this process's CPU seconds (all its
    threads) and the S3 server's; and a function that describes their medians. On a
    shared machine CPU seconds vary less than wall time."""
    mine: dict[str, list[float]] = {name: [] for name in subjects}
    server: dict[str, list[float]] = {name: [] for name in subjects}

    def wrap(name: str, fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            before = None if site is None else site.server_cpu_seconds()
            started = time.process_time()
            out = fn()
            mine[name].append(time.process_time() - started)
            after = None if site is None else site.server_cpu_seconds()
            if before is not None and after is not None:
                server[name].append(after - before)
            return out

        return run

    def note() -> str:
        import statistics

        def medians(spent: dict[str, list[float]]) -> str:
            return ", ".join(
                f"{name} {statistics.median(values[-REPEATS:]):.3f} s"
                for name, values in spent.items()
                if values
            )

        text = "; bench process CPU per run, median: " + medians(mine)
        if any(server.values()):
            text += "; S3 server (moto) CPU per run, median: " + medians(server)
        return text

    return {name: wrap(name, fn) for name, fn in subjects.items()}, note


def large_requested() -> bool:
    return "--10m" in sys.argv or os.environ.get("KITELINE_BENCH_S3_10M", "") not in ("", "0")


def run() -> list[Result]:
    large = large_requested()
    single = events_file(ROWS)
    partitioned = partitioned_dir(single)
    uploads = [(single, f"events-{ROWS}.parquet")]
    if large:
        uploads.append((events_file(LARGE_ROWS), f"events-{LARGE_ROWS}.parquet"))
    with s3_site(uploads, partitioned) as site, pg_site(single) as pg:
        bench = governed(site, pg, large)
        try:
            check_governed(bench, "events_s3")
            results = s3_results(bench, site, "events_s3", ROWS)
            if large:
                results += s3_results(bench, site, "events_s3_large", LARGE_ROWS, pushdown=False)
            if pg is not None:
                results += postgres_results(bench, *pg)
        finally:
            bench.gateway.close()
    return results


def check_governed(bench: Governed, dataset: str) -> None:
    """The governed read returns the four columns, pseudonymized and masked."""
    table = bench.table(dataset, {"columns": READ_COLUMNS, "limit": 5})
    if table.column_names != READ_COLUMNS:
        raise RuntimeError(f"the governed read returned {table.column_names}")
    emails = table.column("email").to_pylist()
    ids = table.column("identifier").to_pylist()
    if not all("***@" in e for e in emails) or any(i.startswith("U0") for i in ids):
        raise RuntimeError(f"the governed read is not masked/pseudonymized: {emails} {ids}")


def s3_results(
    bench: Governed, site: S3Site, dataset: str, rows: int, *, pushdown: bool = True
) -> list[Result]:
    """A governed read of every row against pyarrow.dataset's own of the same four
    columns, and the bytes fetched for a read of one partition."""
    import pyarrow.dataset as ds

    fs = site.filesystem()
    key = f"{BUCKET}/events-{rows}.parquet"

    def plain_s3() -> object:
        return ds.dataset(key, format="parquet", filesystem=fs).to_table(columns=READ_COLUMNS)

    lake = bench.gateway.connectors["lake"]
    subjects, note = with_cpu(
        site,
        {
            "governed": lambda: bench.read(dataset, read_body(rows)),
            "connector": lambda: drain(lake, f"events-{rows}.parquet", "parquet"),
            "plain": plain_s3,
        },
    )
    timings = interleaved(subjects, repeats=REPEATS)
    results = read_results(
        "s3",
        timings,
        rows=rows,
        plain="pyarrow.dataset(...).to_table(columns=the 4) over pyarrow's S3 client, "
        "same moto server",
        connector="the S3 connector's scan of the 4 columns, before any governance",
        row="s3_read",
        extra=note(),
    )
    if pushdown:
        before = lake.bytes_read
        sent = bench.read("events_parts", {"where": ONE_PARTITION, "limit": rows})
        fetched = lake.bytes_read - before
        note = f"baseline: the whole prefix; response was {sent:,} bytes"
        results.append(one_partition_result("s3 bytes fetched", fetched, site.prefix_bytes, note))
    return results


def postgres_results(bench: Governed, url: str, schema: str) -> list[Result]:
    """A governed read of every row against ADBC's fetch_arrow_table of the same four
    columns."""
    import adbc_driver_postgresql.dbapi as adbc

    plain_sql = f'SELECT {", ".join(READ_COLUMNS)} FROM "{schema}".events'

    def plain_pg() -> int:
        with adbc.connect(url) as connection, connection.cursor() as cursor:
            cursor.execute(plain_sql)
            return int(cursor.fetch_arrow_table().num_rows)

    warehouse = bench.gateway.connectors["warehouse"]
    subjects, note = with_cpu(
        None,
        {
            "governed": lambda: bench.read("events_pg", read_body(ROWS)),
            "connector": lambda: drain(warehouse, f"{schema}.events", "table"),
            "plain": plain_pg,
        },
    )
    timings = interleaved(subjects, repeats=REPEATS)
    return read_results(
        "postgres",
        timings,
        rows=ROWS,
        plain="ADBC PostgreSQL driver, fetch_arrow_table of the same 4 columns "
        "(a new connection per read, as the governed read's pool is warm)",
        connector="the PostgreSQL connector's scan of the 4 columns, no governance",
        row="pg_read",
        extra=note(),
    )


def main() -> int:
    return run_and_print(run)


if __name__ == "__main__":
    sys.exit(main())
