"""The local store: Parquet and CSV through DuckDB with pushdown."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from connectors.base import (
    Aggregate,
    AggregateScan,
    Cancellation,
    ConnectorError,
    DatasetNotFound,
    Filter,
    OrderBy,
    Scan,
    ScanCancelled,
    Table,
)
from connectors.file_cache import ArrowFileCache
from connectors.inline import NeedsWorkerThread, running_inline
from connectors.local import LocalConnector

ROWS = 1000


@pytest.fixture
def store(tmp_path: Path) -> LocalConnector:
    table = pa.table(
        {
            "id": pa.array(range(ROWS), pa.int64()),
            "name": [f"n{i:04d}" for i in range(ROWS)],
            "city": [["bj", "sh", "gz", None][i % 4] for i in range(ROWS)],
            "day": [dt.date(2024, 1, 1) + dt.timedelta(days=i % 300) for i in range(ROWS)],
            "value": [i * 0.5 for i in range(ROWS)],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=100)
    pacsv.write_csv(table.drop_columns(["day"]), tmp_path / "t.csv")
    for year in (2023, 2024):
        folder = tmp_path / "parts" / f"year={year}"
        folder.mkdir(parents=True)
        pq.write_table(table.slice(0, 10), folder / "part.parquet")
    connector = LocalConnector(tmp_path)
    yield connector
    connector.close()


PARQUET = Table("t.parquet")


def rows(store: LocalConnector, scan: Scan, table: Table = PARQUET) -> list[dict[str, object]]:
    return [row for batch in store.scan(table, scan) for row in batch.to_pylist()]


def test_schema_reads_types(store: LocalConnector):
    schema = store.schema(PARQUET)
    assert schema.names == ["id", "name", "city", "day", "value"]
    assert schema.field("day").type == pa.date32()


def test_projection_limit_offset(store: LocalConnector):
    out = rows(store, Scan(columns=("name", "id"), limit=3, offset=10))
    assert out == [{"name": f"n{i:04d}", "id": i} for i in (10, 11, 12)]


@pytest.mark.parametrize(
    ("flt", "count"),
    [
        (Filter("id", "=", 5), 1),
        (Filter("id", "!=", 5), ROWS - 1),
        (Filter("id", "<", 10), 10),
        (Filter("id", "<=", 10), 11),
        (Filter("id", ">", 989), 10),
        (Filter("id", ">=", 989), 11),
        (Filter("city", "in", ("bj", "sh")), 500),
        (Filter("id", "between", (100, 199)), 100),
        (Filter("name", "like", "n00%"), 100),
        (Filter("city", "is_null", True), 250),
        (Filter("city", "is_null", False), 750),
        (Filter("day", "=", dt.date(2024, 1, 1)), 4),
    ],
)
def test_filters(store: LocalConnector, flt: Filter, count: int):
    assert len(rows(store, Scan(columns=("id",), filters=(flt,)))) == count


def test_filter_values_are_data_not_sql(store: LocalConnector):
    hostile = Filter("name", "=", "x' OR '1'='1")
    assert rows(store, Scan(columns=("id",), filters=(hostile,))) == []


def test_order_by(store: LocalConnector):
    out = rows(
        store,
        Scan(
            columns=("id", "city"),
            order_by=(OrderBy("city"), OrderBy("id", descending=True)),
            limit=2,
        ),
    )
    assert out == [{"id": 996, "city": "bj"}, {"id": 992, "city": "bj"}]


def test_scan_streams_batches(store: LocalConnector):
    batches = list(store.scan(PARQUET, Scan(columns=("id",)), batch_size=128))
    assert len(batches) > 1
    assert sum(b.num_rows for b in batches) == ROWS


def test_cancellation_stops_a_scan(store: LocalConnector):
    cancellation = Cancellation()
    batches = store.scan(PARQUET, Scan(columns=("id",)), batch_size=100, cancellation=cancellation)
    next(batches)
    cancellation.cancel()
    with pytest.raises(ScanCancelled):
        next(batches)


def test_csv_and_hive_folders(store: LocalConnector):
    csv = Table("t.csv", format="csv")
    assert len(rows(store, Scan(columns=("id",), filters=(Filter("id", "<", 5),)), csv)) == 5
    parts = Table("parts", options={"hive_partitioning": True})
    assert store.schema(parts).names[-1] == "year"
    out = rows(store, Scan(columns=("id",), filters=(Filter("year", "=", 2024),)), parts)
    assert len(out) == 10


def test_aggregate(store: LocalConnector):
    result = store.aggregate(
        PARQUET,
        AggregateScan(
            group_by=("city",),
            aggregates=(Aggregate("count", None, "n"), Aggregate("sum", "value", "total")),
            filters=(Filter("city", "is_null", False),),
        ),
    )
    assert sorted(result.column("n").to_pylist()) == [250, 250, 250]


def test_missing_and_escaping_locations(store: LocalConnector):
    with pytest.raises(DatasetNotFound):
        store.schema(Table("nope.parquet"))
    with pytest.raises(ConnectorError, match="leaves the store root"):
        store.schema(Table("../../etc/passwd", format="csv"))


def test_a_link_repointed_outside_the_root_is_refused_at_once(
    store: LocalConnector, tmp_path: Path
):
    # Resolved paths are reused while the location names the same file; pointing a
    # link somewhere else makes the next scan resolve and check it again.
    outside = tmp_path.parent / f"{tmp_path.name}-outside.parquet"
    pq.write_table(pa.table({"id": [1]}), outside)
    link = tmp_path / "linked.parquet"
    link.symlink_to(tmp_path / "t.parquet")
    assert len(rows(store, Scan(columns=("id",)), Table("linked.parquet"))) == ROWS
    link.unlink()
    link.symlink_to(outside)
    with pytest.raises(ConnectorError, match="leaves the store root"):
        rows(store, Scan(columns=("id",)), Table("linked.parquet"))
    link.unlink()
    with pytest.raises(DatasetNotFound):
        rows(store, Scan(columns=("id",)), Table("linked.parquet"))


def test_a_stream_may_be_read_from_several_threads(store: LocalConnector):
    """A server reads each chunk of a streamed answer on whichever worker thread is free."""
    from concurrent.futures import ThreadPoolExecutor

    scans = [store.scan(PARQUET, Scan(columns=("id",)), batch_size=100) for _ in range(8)]
    counts = [0] * len(scans)
    with ThreadPoolExecutor(max_workers=4) as pool:
        # Interleave: every round pulls the next batch of every scan on some pool thread.
        for _ in range(ROWS // 100 + 1):
            rows = list(pool.map(lambda it: sum(b.num_rows for b in [next(it, None)] if b), scans))
            counts = [c + r for c, r in zip(counts, rows, strict=True)]
    assert counts == [ROWS] * len(scans)


def test_on_the_event_loop_only_a_loaded_file_is_read(tmp_path: Path, store: LocalConnector):
    # Loading a file, or reading one from disk, would stall every connection of the
    # server: on the event loop the scan declines, and the caller retries elsewhere.
    scan = Scan(columns=("id",), limit=3)
    with running_inline(), pytest.raises(NeedsWorkerThread, match="not loaded"):
        rows(store, scan)
    assert len(rows(store, scan)) == 3  # loads it, off the loop
    with running_inline():
        assert len(rows(store, scan)) == 3
        assert len(rows(store, Scan(columns=("id",), filters=(Filter("id", "<", 5),)))) == 5
        with pytest.raises(NeedsWorkerThread, match="read from disk"):
            rows(store, scan, Table("parts", options={"hive_partitioning": True}))

    small_cache = LocalConnector(tmp_path, file_cache=ArrowFileCache(max_file_bytes=10))
    try:
        assert len(rows(small_cache, scan)) == 3
        with running_inline(), pytest.raises(NeedsWorkerThread, match="too large"):
            rows(small_cache, scan)
    finally:
        small_cache.close()
