"""The small-file Arrow cache behind the local store, and what is derived from it."""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from connectors import derived as derived_columns
from connectors import local
from connectors.base import ConnectorError, Derived, Filter, OrderBy, Scan, Table
from connectors.file_cache import ArrowFileCache
from connectors.inline import NeedsWorkerThread, running_inline
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


def test_a_file_that_decodes_past_the_bound_is_never_loaded(tmp_path: Path):
    # Small on disk (one repeated value compresses to almost nothing), large decoded:
    # the footer's uncompressed size declines it before any decoding.
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": pa.array([7] * 200_000, pa.int64())}), path)
    on_disk = path.stat().st_size
    cache = ArrowFileCache(max_file_bytes=max(on_disk, 100_000))
    assert on_disk <= cache.max_file_bytes < 200_000 * 8
    store = LocalConnector(tmp_path, file_cache=cache)
    loads: list[Path] = []
    real_get = cache.get

    def counting_get(path: Path, variant: Hashable, load: Callable[[], pa.Table], **kw: Any):
        def counted() -> pa.Table:
            loads.append(path)
            return load()

        return real_get(path, variant, counted, **kw)

    cache.get = counting_get  # type: ignore[method-assign]
    try:
        for _ in range(2):
            assert len(_ids(store, "t.parquet")) == 200_000
        assert len(cache) == 0 and loads == []
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


def test_a_derived_value_lives_and_dies_with_its_table(tmp_path: Path):
    path = tmp_path / "t.parquet"
    _write(path, list(range(100)))
    cache = ArrowFileCache()
    table = cache.get(path, "parquet", lambda: pq.read_table(path))
    assert table is not None
    builds: list[int] = []

    def build(t: pa.Table) -> pa.Array:
        builds.append(1)
        return pc.dictionary_encode(t.column("id").combine_chunks())

    first = cache.derive(path, "parquet", table, "id", build)
    assert cache.derive(path, "parquet", table, "id", build) is first
    assert len(builds) == 1
    # Another table than the cached one (an older version of the file): built, not kept.
    other = pa.table({"id": pa.array([5], pa.int64())})
    assert cache.derive(path, "parquet", other, "id", build).to_pylist() == [5]
    assert cache.derive(path, "parquet", other, "id", build).to_pylist() == [5]
    assert len(builds) == 3
    # The file changes: its new table starts with nothing derived.
    _write(path, [1, 2])
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    fresh = cache.get(path, "parquet", lambda: pq.read_table(path))
    assert fresh is not None and fresh is not table
    assert cache.derive(path, "parquet", fresh, "id", build).to_pylist() == [1, 2]
    assert len(builds) == 4


def test_derived_values_count_toward_the_bound(tmp_path: Path):
    table = pa.table({"id": pa.array(range(1000), pa.int64())})  # 8,000 bytes
    half = pa.array(range(500), pa.int64())  # 4,000 bytes
    cache = ArrowFileCache(max_total_bytes=int(3.5 * table.nbytes))
    paths = [tmp_path / f"{name}.parquet" for name in "abc"]
    for path in paths:
        pq.write_table(table, path)
        assert cache.get(path, "parquet", lambda: table) is table
    cache.derive(paths[0], "parquet", table, "half", lambda _: half)
    assert len(cache) == 3  # 28,000 bytes: at the bound
    cache.derive(paths[2], "parquet", table, "half", lambda _: half)
    # Past the bound by the derived bytes alone: the least recently used entry goes
    # (b: deriving from a table uses it).
    assert len(cache) == 2
    assert not cache.has_room(paths[1], "parquet", table)
    assert cache.derived_values(paths[0], "parquet", table, ["half"]) == [half]
    assert cache.derived_values(paths[2], "parquet", table, ["half"]) == [half]


def test_derived_values_never_evict_their_own_table(tmp_path: Path):
    table = pa.table({"id": pa.array(range(1000), pa.int64())})
    cache = ArrowFileCache(max_total_bytes=2 * table.nbytes + 10)
    path = tmp_path / "a.parquet"
    pq.write_table(table, path)
    assert cache.get(path, "parquet", lambda: table) is table
    assert cache.has_room(path, "parquet", table)
    # A copy as large as the table would pass half the bound: built for this caller,
    # not kept, and nothing more is kept beside the table.
    copy = cache.derive(path, "parquet", table, "copy", lambda t: t.column("id"))
    assert copy is not None and len(cache) == 1
    assert cache.derived_values(path, "parquet", table, ["copy"]) == [None]
    assert not cache.has_room(path, "parquet", table)


def _events(path: Path, rows: int, distinct: int) -> pa.Table:
    ids = [None if i % 13 == 0 else f"U{i % distinct:04d}" for i in range(rows)]
    table = pa.table({"id": pa.array(ids), "n": pa.array(range(rows), pa.int64())})
    pq.write_table(table, path)
    return table


def test_a_bulk_scan_may_return_a_hinted_column_dictionary_encoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(local, "DICTIONARY_MIN_ROWS", 100)
    source = _events(tmp_path / "t.parquet", 1000, 40)
    store = LocalConnector(tmp_path)
    try:
        for scan, size in (
            (Scan(columns=("n", "id"), dictionary=("id",)), 400),
            (Scan(columns=("id", "n"), dictionary=("id",), limit=600, offset=123), 250),
        ):
            batches = list(store.scan(Table("t.parquet"), scan, batch_size=size))
            assert all(pa.types.is_dictionary(b.schema.field("id").type) for b in batches[:-1])
            got = pa.Table.from_batches([b.cast(_plain(b.schema)) for b in batches])
            want = source.select(list(scan.columns)).slice(scan.offset, scan.limit)
            assert got == want
        # Without the hint, in small batches, or for short reads: plain values.
        for scan, size in (
            (Scan(columns=("id",)), 400),
            (Scan(columns=("id",), dictionary=("id",)), 50),
            (Scan(columns=("id",), dictionary=("id",), limit=60), 400),
        ):
            for batch in store.scan(Table("t.parquet"), scan, batch_size=size):
                assert batch.schema.field("id").type == pa.string()
    finally:
        store.close()


def test_a_column_with_many_distinct_values_stays_plain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(local, "DICTIONARY_MIN_ROWS", 100)
    _events(tmp_path / "t.parquet", 1000, 900)
    store = LocalConnector(tmp_path)
    try:
        scan = Scan(columns=("id",), dictionary=("id",))
        for batch in store.scan(Table("t.parquet"), scan, batch_size=1000):
            assert batch.schema.field("id").type == pa.string()
    finally:
        store.close()


def _plain(schema: pa.Schema) -> pa.Schema:
    return pa.schema(
        [
            pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f
            for f in schema
        ]
    )


def _doubled(builds: list[int]) -> Derived:
    def build(table: pa.Table) -> pa.Array:
        builds.append(table.num_rows)
        return pc.multiply(table.column("n"), 2)

    return Derived("\x00doubled", "doubled", build)


def test_a_scan_hands_over_derived_columns_sliced_to_its_rows(tmp_path: Path):
    _events(tmp_path / "t.parquet", 1000, 40)
    store = LocalConnector(tmp_path)
    builds: list[int] = []
    try:
        for scan, size in (
            (Scan(columns=("n",), derived=(_doubled(builds),)), 300),
            (Scan(columns=("id", "n"), limit=250, offset=613, derived=(_doubled(builds),)), 64),
            (Scan(columns=("n",), offset=999, derived=(_doubled(builds),)), 64),
        ):
            batches = list(store.scan(Table("t.parquet"), scan, batch_size=size))
            rows = [row for batch in batches for row in batch.to_pylist()]
            assert [r["n"] for r in rows] == list(range(1000))[scan.offset :][: scan.limit]
            assert all(r["\x00doubled"] == 2 * r["n"] for r in rows)
            assert all(b.schema.names[-1] == "\x00doubled" for b in batches)
        # Built once (the table is one block), and kept with it.
        assert builds == [1000]
    finally:
        store.close()


def test_derived_columns_are_built_again_for_a_new_version_of_the_file(tmp_path: Path):
    path = tmp_path / "t.parquet"
    _events(path, 100, 10)
    store = LocalConnector(tmp_path)
    builds: list[int] = []
    scan = Scan(columns=("n",), limit=3, derived=(_doubled(builds),))
    try:
        assert [b.column(1).to_pylist() for b in store.scan(Table("t.parquet"), scan)] == [
            [0, 2, 4]
        ]
        pq.write_table(pa.table({"n": pa.array([7, 8], pa.int64())}), path)
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        assert [b.column(1).to_pylist() for b in store.scan(Table("t.parquet"), scan)] == [[14, 16]]
        assert builds == [100, 2]
    finally:
        store.close()


def test_derived_columns_are_left_out_where_the_table_is_not_held_whole(tmp_path: Path):
    _events(tmp_path / "t.parquet", 1000, 40)
    builds: list[int] = []
    derived = (_doubled(builds),)
    store = LocalConnector(tmp_path)
    uncached = LocalConnector(tmp_path, file_cache=ArrowFileCache(max_file_bytes=0))
    try:
        # A filtered or ordered scan goes through DuckDB: rows are not the table's own.
        for scan in (
            Scan(columns=("n",), filters=(Filter("n", "<", 10),), derived=derived),
            Scan(columns=("n",), order_by=(OrderBy("n", descending=True),), derived=derived),
        ):
            assert all(b.schema.names == ["n"] for b in store.scan(Table("t.parquet"), scan))
        scan = Scan(columns=("n",), limit=5, derived=derived)
        assert all(b.schema.names == ["n"] for b in uncached.scan(Table("t.parquet"), scan))
        assert builds == []
    finally:
        store.close()
        uncached.close()


def test_a_derivation_of_the_wrong_length_is_refused(tmp_path: Path):
    _events(tmp_path / "t.parquet", 10, 2)
    store = LocalConnector(tmp_path)
    short = Derived("\x00short", "short", lambda _table: pa.array([1], pa.int64()))
    try:
        with pytest.raises(ConnectorError, match="has 1 rows, not 10"):
            list(store.scan(Table("t.parquet"), Scan(columns=("n",), derived=(short,))))
    finally:
        store.close()


def test_on_the_event_loop_a_column_not_derived_yet_declines(tmp_path: Path):
    _events(tmp_path / "t.parquet", 100, 10)
    store = LocalConnector(tmp_path)
    builds: list[int] = []
    scan = Scan(columns=("n",), limit=2, derived=(_doubled(builds),))
    try:
        list(store.scan(Table("t.parquet"), Scan(columns=("n",))))  # the file is loaded
        with running_inline(), pytest.raises(NeedsWorkerThread):
            list(store.scan(Table("t.parquet"), scan))
        assert builds == []
        list(store.scan(Table("t.parquet"), scan))  # a worker thread derives it
        with running_inline():
            batches = list(store.scan(Table("t.parquet"), scan))
        assert batches[0].column(1).to_pylist() == [0, 2]
        assert builds == [100]
    finally:
        store.close()


def test_a_derived_value_is_found_only_beside_its_own_table(tmp_path: Path):
    path = tmp_path / "t.parquet"
    _write(path, [1, 2])
    cache = ArrowFileCache()
    table = cache.get(path, "parquet", lambda: pq.read_table(path))
    assert table is not None
    assert cache.derived_values(path, "parquet", table, ["x", "y"]) == [None, None]
    kept = cache.derive(path, "parquet", table, "x", lambda t: t.column("id"))
    assert cache.derived_values(path, "parquet", table, ["y", "x"]) == [None, kept]
    assert cache.derived_values(path, "parquet", pa.table({"id": [1, 2]}), ["x"]) == [None]
    assert cache.derived_values(path, "csv", table, ["x"]) == [None]


@pytest.fixture
def in_small_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalConnector]:
    """A store over a 1,000-row file whose derived columns come in blocks of 128 rows."""
    monkeypatch.setattr(derived_columns, "BLOCK_ROWS", 128)
    _events(tmp_path / "t.parquet", 1000, 40)
    store = LocalConnector(tmp_path)
    yield store
    store.close()


def test_derived_columns_are_built_block_by_block_as_scans_reach_them(
    in_small_blocks: LocalConnector,
):
    builds: list[int] = []
    # A page inside the first block builds that block only.
    page = Scan(columns=("n",), limit=100, offset=10, derived=(_doubled(builds),))
    batches = list(in_small_blocks.scan(Table("t.parquet"), page))
    assert batches[0].column(1).to_pylist() == [2 * n for n in range(10, 110)]
    assert builds == [128]
    # Batches across block boundaries join the blocks they span; the last is short.
    scan = Scan(columns=("n",), offset=100, derived=(_doubled(builds),))
    batches = list(in_small_blocks.scan(Table("t.parquet"), scan, batch_size=300))
    rows = [r for b in batches for r in b.to_pylist()]
    assert [r["\x00doubled"] for r in rows] == [2 * n for n in range(100, 1000)]
    assert builds == [128] * 7 + [104]


def test_on_the_event_loop_a_later_batch_comes_without_blocks_not_built(
    in_small_blocks: LocalConnector,
):
    builds: list[int] = []
    first = Scan(columns=("n",), limit=10, derived=(_doubled(builds),))
    list(in_small_blocks.scan(Table("t.parquet"), first))  # loads the file, builds block 0
    scan = Scan(columns=("n",), limit=300, derived=(_doubled(builds),))
    with running_inline():
        batches = list(in_small_blocks.scan(Table("t.parquet"), scan, batch_size=100))
    # The first batch lies in the built block; the others reach blocks 1 and 2,
    # which the event loop never builds: they come plain, and nothing declined.
    assert [b.num_columns for b in batches] == [2, 1, 1]
    assert builds == [128]


class _CountingCache(ArrowFileCache):
    def __init__(self, **bounds: int) -> None:
        super().__init__(**bounds)
        self.loads = 0

    def get(
        self, path: Path, variant: Hashable, load: Callable[[], pa.Table], **kwargs: Any
    ) -> pa.Table | None:
        def counted() -> pa.Table:
            self.loads += 1
            return load()

        return super().get(path, variant, counted, **kwargs)


def test_derived_columns_stop_where_the_cache_keeps_no_more_and_the_file_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(derived_columns, "BLOCK_ROWS", 128)
    source = _events(tmp_path / "t.parquet", 1000, 40)
    cache = _CountingCache(max_total_bytes=3 * source.nbytes)
    store = LocalConnector(tmp_path, file_cache=cache)
    builds: list[int] = []
    wide = Derived("\x00wide", "wide", lambda t: pc.binary_repeat(t.column("id"), 20))
    scan = Scan(columns=("n",), derived=(_doubled(builds), wide))
    try:
        for _ in range(5):
            batches = list(store.scan(Table("t.parquet"), scan, batch_size=100))
            rows = [r for b in batches for r in b.to_pylist()]
            assert [r["n"] for r in rows] == list(range(1000))
            assert all(r.get("\x00doubled", 2 * r["n"]) == 2 * r["n"] for r in rows)
        # The wide column filled the table's share after a few blocks: later batches
        # come without derived columns (the caller computes them), and the file itself
        # is loaded once and stays.
        assert cache.loads == 1 and len(cache) == 1
        cached = cache.get(tmp_path / "t.parquet", ("parquet", False), lambda: source)
        assert cache.loads == 1 and not cache.has_room(
            tmp_path / "t.parquet", ("parquet", False), cached
        )
        assert "\x00wide" not in batches[-1].schema.names
        assert len(builds) < 1000 // 128 + 1
    finally:
        store.close()
