"""k-anonymity and l-diversity over a whole dataset, checked independently with DuckDB."""

from __future__ import annotations

import datetime as dt
import random

import duckdb
import pyarrow as pa
import pytest

from gateway.transforms import kanonymity
from gateway.transforms.kanonymity import (
    SMALL_BATCH_ROWS,
    ClassIndex,
    QiSpec,
    generalized,
    take_kept,
)

SPEC = QiSpec((("birth", "band:10"), ("zip", "prefix:2"), ("gender", "keep")), k=5)


def people(n: int, seed: int = 3) -> pa.Table:
    rng = random.Random(seed)
    return pa.table(
        {
            "birth": pa.array(
                [dt.date(rng.randint(1930, 2005), 1, 1) for _ in range(n)], pa.date32()
            ),
            "zip": [f"{rng.randint(10, 30)}{rng.randint(0, 9999):04d}" for _ in range(n)],
            "gender": [rng.choice(["男", "女", None]) for _ in range(n)],
            "diagnosis": [rng.choice(["a", "b", "c"]) for _ in range(n)],
        }
    )


def released(table: pa.Table, index: ClassIndex, batch_rows: int = 97) -> pa.Table:
    out = [b.filter(index.keep(b)) for b in table.to_batches(max_chunksize=batch_rows)]
    return pa.Table.from_batches(out, schema=table.schema)


def generalized_table(table: pa.Table, spec: QiSpec) -> pa.Table:
    batch = table.combine_chunks().to_batches()[0]
    columns = dict(zip(spec.names, generalized(batch, spec), strict=True))
    columns["diagnosis"] = batch.column("diagnosis")
    return pa.table(columns)


def duckdb_min_class_size(table: pa.Table, columns: list[str]) -> int:
    keys = ", ".join(columns)
    conn = duckdb.connect()
    conn.register("t", table)
    return conn.execute(
        f"SELECT min(n) FROM (SELECT count(*) n FROM t GROUP BY {keys})"
    ).fetchone()[0]


def test_released_rows_are_k_anonymous_by_an_independent_count():
    data = people(3000)
    index = ClassIndex.build(SPEC, data.to_batches(max_chunksize=500))
    out = generalized_table(released(data, index), SPEC)
    assert 0 < out.num_rows < data.num_rows  # something suppressed, something released
    assert duckdb_min_class_size(out, SPEC.names) >= SPEC.k
    # Every class DuckDB finds of size >= k in the whole input is released whole.
    full = generalized_table(data, SPEC)
    conn = duckdb.connect()
    conn.register("t", full)
    expected = conn.execute(
        "SELECT sum(n) FROM (SELECT count(*) n FROM t GROUP BY birth, zip, gender) WHERE n >= 5"
    ).fetchone()[0]
    assert out.num_rows == expected
    assert index.released_share == pytest.approx(expected / data.num_rows)


def test_classes_are_counted_over_the_whole_dataset_not_the_batch():
    # Five identical rows spread over five batches: each batch alone has a class of one.
    data = pa.table(
        {
            "birth": pa.array([dt.date(1950, 1, 1)] * 5, pa.date32()),
            "zip": ["100000"] * 5,
            "gender": ["男"] * 5,
            "diagnosis": ["a"] * 5,
        }
    )
    index = ClassIndex.build(SPEC, data.to_batches(max_chunksize=1))
    assert released(data, index, batch_rows=1).num_rows == 5
    index6 = ClassIndex.build(QiSpec(SPEC.columns, k=6), data.to_batches(max_chunksize=1))
    assert released(data, index6).num_rows == 0
    assert (index.released_share, index6.released_share) == (1.0, 0.0)


def test_l_diversity_suppresses_homogeneous_classes():
    data = pa.table(
        {
            "birth": pa.array([dt.date(1950, 1, 1)] * 6 + [dt.date(1970, 1, 1)] * 6, pa.date32()),
            "zip": ["100000"] * 12,
            "gender": ["男"] * 12,
            "diagnosis": ["a"] * 6 + ["a", "b", "a", "b", "a", "a"],
        }
    )
    spec = QiSpec(SPEC.columns, k=5, l_column="diagnosis", l=2)
    index = ClassIndex.build(spec, data.to_batches())
    out = released(data, index)
    assert out.num_rows == 6
    assert index.released_share == 0.5
    assert {d.year for d in out.column("birth").to_pylist()} == {1970}


def test_unseen_values_are_never_released():
    data = people(500)
    index = ClassIndex.build(QiSpec(SPEC.columns, k=2), data.to_batches())
    stranger = pa.table(
        {
            "birth": pa.array([dt.date(1800, 1, 1)], pa.date32()),
            "zip": ["990000"],
            "gender": ["x"],
            "diagnosis": ["a"],
        }
    )
    assert index.keep(stranger.to_batches()[0]).to_pylist() == [False]


@pytest.mark.parametrize("wanted", [0, 1, 3, 4, 10])
def test_take_kept_stops_at_the_wanted_row(wanted: int):
    batch = pa.record_batch({"x": list(range(8))})
    keep = pa.array([True, False, True, True, False, False, True, False])
    rows, consumed, cut = take_kept(batch, keep, wanted)
    expected = [0, 2, 3, 6][:wanted]
    assert rows.column("x").to_pylist() == expected
    if wanted < 4:
        assert cut and consumed == ([0, 1, 3, 4][wanted] if wanted else 0)
    else:
        assert not cut and consumed == 8


@pytest.mark.parametrize("size", [8, 300])
def test_take_kept_of_rows_all_kept_is_their_slice(size: int):
    batch = pa.record_batch({"x": list(range(size))})
    keep = pa.array([True] * size)
    rows, consumed, cut = take_kept(batch, keep, 5)
    assert (rows.column("x").to_pylist(), consumed, cut) == ([0, 1, 2, 3, 4], 5, True)
    rows, consumed, cut = take_kept(batch, keep, size)
    assert rows is batch and (consumed, cut) == (size, False)


@pytest.mark.parametrize("wanted", [0, 1, 7, 150, 400])
def test_take_kept_counts_a_page_in_python_as_arrow_does(wanted: int, monkeypatch):
    rng = random.Random(wanted)
    batch = pa.record_batch({"x": list(range(300))})
    keep = pa.array([rng.random() < 0.6 for _ in range(300)])
    paged = take_kept(batch, keep, wanted)
    monkeypatch.setattr(kanonymity, "SMALL_BATCH_ROWS", 0)  # the vectorized path
    bulk = take_kept(batch, keep, wanted)
    assert paged[0].equals(bulk[0]) and paged[1:] == bulk[1:]
    assert paged[0].num_rows == min(wanted, sum(keep.to_pylist()))


def test_pycanon_agrees_when_installed():
    # pycanon pins typing_extensions==4.15.0, which the web stack cannot use, so it is
    # not a declared dependency; where it is installed (pip install --no-deps pycanon)
    # it is a second independent opinion.
    anonymity = pytest.importorskip("pycanon.anonymity")
    data = people(2000, seed=11)
    spec = QiSpec(SPEC.columns, k=4, l_column="diagnosis", l=2)
    out = generalized_table(released(data, ClassIndex.build(spec, data.to_batches())), spec)
    frame = out.to_pandas().fillna("<null>")
    assert anonymity.k_anonymity(frame, spec.names) >= 4
    assert anonymity.l_diversity(frame, spec.names, ["diagnosis"]) >= 2


@pytest.mark.parametrize("l_column", [None, "diagnosis"])
def test_small_batches_are_decided_exactly_as_large_ones(l_column: str | None):
    # Small batches take a Python path, large ones Arrow kernels: same rows either way,
    # including nulls and combinations the index has never seen.
    spec = QiSpec(SPEC.columns, k=5, l_column=l_column, l=2 if l_column else 1)
    data = people(4000)
    index = ClassIndex.build(spec, data.to_batches(max_chunksize=1000))
    # Values the index has never seen, in every column, beside indexed ones.
    strangers = pa.table(
        {
            "birth": pa.array([dt.date(2024, 1, 1), dt.date(1950, 1, 1)] * 40, pa.date32()),
            "zip": ["990000", "150000"] * 40,
            "gender": ["x", "男"] * 40,
            "diagnosis": ["z", "a"] * 40,
        }
    )
    mixed = [data.slice(0, 2000), strangers, people(600, seed=11)]
    batch = pa.concat_tables(mixed).combine_chunks().to_batches()[0]
    assert batch.num_rows > SMALL_BATCH_ROWS
    whole = index.keep(batch).to_pylist()
    # Twice: the second time the pages are answered from remembered decisions.
    for _ in range(2):
        pieces = [index.keep(batch.slice(i, 50)).to_pylist() for i in range(0, len(batch), 50)]
        assert [kept for piece in pieces for kept in piece] == whole
    assert 0 < sum(whole) < len(whole)


def test_a_page_is_decided_the_same_once_the_remembered_values_are_full(monkeypatch):
    # Pages remember each source value's code term; past the bound they still compute
    # it, and decide exactly as the vectorized path does.
    data = people(3000)
    index = ClassIndex.build(SPEC, data.to_batches(max_chunksize=1000))
    batch = data.combine_chunks().to_batches()[0]
    whole = index.keep(batch).to_pylist()
    monkeypatch.setattr(kanonymity, "MAX_REMEMBERED_VALUES", 40)
    monkeypatch.setattr(kanonymity, "MAX_REMEMBERED_ROWS", 250)
    for _ in range(2):
        pages = [index.keep(batch.slice(i, 100)).to_pylist() for i in range(0, len(batch), 100)]
        assert [kept for page in pages for kept in page] == whole
    assert all(len(terms) <= 40 for terms in index._terms.values())
    assert all(len(rows) <= 250 for rows in index._decided.values())
    assert 0 < sum(whole) < len(whole)


def test_a_page_of_another_time_zone_is_not_decided_from_remembered_values(monkeypatch):
    # One instant views as the same integer in any time zone, yet may generalize to
    # another year: what one type's pages left behind must not decide another's.
    instants = [dt.datetime(2020, 12, 31, 20, 0, tzinfo=dt.UTC)] * 6
    spec = QiSpec((("at", "year"),), k=5)
    utc = pa.record_batch({"at": pa.array(instants, pa.timestamp("us", tz="UTC"))})
    index = ClassIndex.build(spec, [utc])
    shanghai = pa.record_batch({"at": utc.column(0).cast(pa.timestamp("us", tz="Asia/Shanghai"))})
    assert index.keep(utc).to_pylist() == [True] * 6  # remembers the UTC terms
    paged = index.keep(shanghai).to_pylist()
    monkeypatch.setattr(kanonymity, "SMALL_BATCH_ROWS", 0)  # the vectorized path
    assert paged == index.keep(shanghai).to_pylist()


def test_a_derived_keep_mask_is_the_index_own_and_is_taken_from_the_batch():
    table = people(2_000)
    index = ClassIndex.build(SPEC, table.to_batches(max_chunksize=500))
    derivation = index.derivation()
    whole = derivation.build(table)
    assert whole == index.keep(table.combine_chunks().to_batches()[0])
    assert derivation.key == index.derivation().key
    # An index of other data, with an equal spec, has a key of its own and its own
    # answer for the same rows: a store never mixes the two.
    other = ClassIndex.build(SPEC, people(300, seed=9).to_batches())
    assert other.derivation().key != derivation.key
    assert other.derivation().build(table) != whole
    page = table.slice(40, 97).combine_chunks().to_batches()[0]
    flags = pa.array([i % 2 == 0 for i in range(97)])
    with_mask = pa.RecordBatch.from_arrays(
        [*page.columns, flags], names=[*page.schema.names, kanonymity.KEPT_COLUMN]
    )
    assert index.kept(with_mask) == flags
    assert index.kept(page) == index.keep(page) == whole.slice(40, 97)
