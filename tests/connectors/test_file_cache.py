"""The small-file Arrow cache behind the local store."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.base import ConnectorError, Scan, Table
from connectors.file_cache import ArrowFileCache
from connectors.local import LocalConnector


def _write(path: Path, values: list[int]) -> None:
    pq.write_table(pa.table({"id": pa.array(values, pa.int64())}), path)


def _ids(store: LocalConnector, location: str) -> list[object]:
    batches = store.scan(Table(location), Scan(columns=("id",)))
    return [row["id"] for batch in batches for row in batch.to_pylist()]


def test_small_file_is_cached_and_reread_when_changed(tmp_path: Path):
    path = tmp_path / "t.parquet"
    _write(path, [1, 2, 3])
    store = LocalConnector(tmp_path)
    try:
        assert _ids(store, "t.parquet") == [1, 2, 3]
        assert len(store.file_cache) == 1
        _write(path, [7, 8])
        # Same size is not enough to hide a change: force an older mtime too.
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        assert _ids(store, "t.parquet") == [7, 8]
    finally:
        store.close()


def test_big_file_is_read_without_caching(tmp_path: Path):
    _write(tmp_path / "t.parquet", list(range(100)))
    store = LocalConnector(tmp_path, file_cache=ArrowFileCache(max_file_bytes=10))
    try:
        assert _ids(store, "t.parquet") == list(range(100))
        assert len(store.file_cache) == 0
    finally:
        store.close()


def test_folder_is_not_cached(tmp_path: Path):
    (tmp_path / "parts").mkdir()
    _write(tmp_path / "parts" / "a.parquet", [1])
    store = LocalConnector(tmp_path)
    try:
        assert _ids(store, "parts") == [1]
        assert len(store.file_cache) == 0
    finally:
        store.close()


def test_total_size_is_bounded(tmp_path: Path):
    table = pa.table({"id": pa.array(range(1000), pa.int64())})
    cache = ArrowFileCache(max_total_bytes=table.nbytes + 10)
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table, path)
        assert cache.get(path, "parquet", lambda: table) is table
    assert len(cache) == 1


def test_deleted_file_is_not_served_from_cache(tmp_path: Path):
    path = tmp_path / "t.parquet"
    _write(path, [1])
    cache = ArrowFileCache()
    assert cache.get(path, "parquet", lambda: pq.read_table(path)) is not None
    path.unlink()
    assert cache.get(path, "parquet", lambda: pq.read_table(path)) is None


def test_cached_scan_matches_the_query_path(tmp_path: Path):
    _write(tmp_path / "t.parquet", list(range(50)))
    cached = LocalConnector(tmp_path)
    direct = LocalConnector(tmp_path, file_cache=ArrowFileCache(max_file_bytes=0))
    try:
        for scan in (Scan(columns=("id",), limit=7, offset=40), Scan(columns=("id",), offset=45)):
            got = [b for b in cached.scan(Table("t.parquet"), scan)]
            want = [b for b in direct.scan(Table("t.parquet"), scan)]
            assert pa.Table.from_batches(got) == pa.Table.from_batches(want)
        assert len(cached.file_cache) == 1
        assert len(direct.file_cache) == 0
    finally:
        cached.close()
        direct.close()


def test_cached_scan_of_unknown_column_fails_cleanly(tmp_path: Path):
    _write(tmp_path / "t.parquet", [1])
    store = LocalConnector(tmp_path)
    try:
        with pytest.raises(ConnectorError):
            _ids_of(store, ("nope",))
    finally:
        store.close()


def _ids_of(store: LocalConnector, columns: tuple[str, ...]) -> list[object]:
    return [b for b in store.scan(Table("t.parquet"), Scan(columns=columns))]
