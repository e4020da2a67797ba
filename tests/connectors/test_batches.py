"""Regrouping a store's batches into the batches a read asks for."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import coalesced


def _batches(*sizes: int) -> list[pa.RecordBatch]:
    start = 0
    out = []
    for size in sizes:
        values = list(range(start, start + size))
        out.append(pa.record_batch({"n": values, "s": [str(v) for v in values]}))
        start += size
    return out


def test_small_batches_are_joined_into_whole_ones_in_order() -> None:
    joined = list(coalesced(_batches(3, 0, 5, 2, 7), 4))
    assert [b.num_rows for b in joined] == [4, 4, 4, 4, 1]
    assert pa.Table.from_batches(joined).column("n").to_pylist() == list(range(17))
    assert pa.Table.from_batches(joined).column("s").to_pylist() == [str(v) for v in range(17)]


def test_a_batch_of_the_asked_size_is_passed_on_without_a_copy() -> None:
    batch = _batches(4)[0]
    (out,) = coalesced([batch], 4)
    assert out.column("s").buffers()[2].address == batch.column("s").buffers()[2].address


def test_a_batch_larger_than_asked_is_cut() -> None:
    assert [b.num_rows for b in coalesced(_batches(10), 4)] == [4, 4, 2]


def test_a_scan_of_no_rows_still_yields_its_schema() -> None:
    empty = _batches(0)[0]
    assert list(coalesced([empty, empty], 4)) == [empty]
    assert list(coalesced([], 4)) == []


def test_dictionary_columns_with_different_dictionaries_are_joined() -> None:
    first = pa.record_batch({"c": pa.array(["x", "y"]).dictionary_encode()})
    second = pa.record_batch({"c": pa.array(["z", "x"]).dictionary_encode()})
    (out,) = coalesced([first, second], 4)
    assert out.column("c").to_pylist() == ["x", "y", "z", "x"]


def test_a_byte_bound_hands_a_batch_on_before_it_has_all_its_rows() -> None:
    batches = _batches(5, 5, 5, 5)
    bound = batches[0].nbytes * 2
    assert [b.num_rows for b in coalesced(batches, 100, bound)] == [10, 10]


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), max_size=12),
    batch_size=st.integers(1, 50),
    bound_batches=st.one_of(st.none(), st.integers(1, 4)),
)
def test_any_store_batches_come_out_whole_in_order_and_bounded(
    sizes: list[int], batch_size: int, bound_batches: int | None
) -> None:
    batches = _batches(*sizes)
    one_row = pa.record_batch({"n": [0], "s": ["0"]}).nbytes
    bound = None if bound_batches is None else one_row * bound_batches * 10
    out = list(coalesced(batches, batch_size, bound))
    rows = [v for b in out for v in b.column(0).to_pylist()]
    assert rows == list(range(sum(sizes)))
    assert all(0 < b.num_rows <= batch_size for b in out) or (
        sum(sizes) == 0 and [b.num_rows for b in out] == ([0] if sizes else [])
    )
    # Only the last batch may be short, unless the byte bound handed one on early.
    if bound is None:
        assert all(b.num_rows == batch_size for b in out[:-1])
