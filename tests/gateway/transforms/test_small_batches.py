"""Small batches take a Python-list path and large ones the columnar Arrow path: for any
input the two must give the same values, nulls in the same places, the same type."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.transforms import generalization, masking, scrubbing

SETTINGS = settings(max_examples=150, deadline=None, database=None)


@contextmanager
def _path(module: ModuleType, small: bool) -> Iterator[None]:
    """Force ``module`` onto its list path (small) or its Arrow path (not small)."""
    saved = module.SMALL_BATCH_ROWS
    module.SMALL_BATCH_ROWS = 10**9 if small else -1
    try:
        yield
    finally:
        module.SMALL_BATCH_ROWS = saved


def _both(module: ModuleType, fn: Callable[[], pa.Array]) -> tuple[Any, Any]:
    """The result (or the exception type) of ``fn`` on each path."""
    results = []
    for small in (True, False):
        with _path(module, small):
            try:
                out = fn()
            except Exception as exc:  # compared by type: both paths must refuse alike
                results.append(type(exc))
            else:
                results.append((out.type, out.to_pylist()))
    return results[0], results[1]


def _assert_generalized_alike(column: pa.Array, rule: str) -> None:
    """Both paths generalize ``column`` by ``rule`` to the same result (or refuse alike)."""
    small, large = _both(generalization, lambda: generalization.generalize(column, rule))
    assert small == large


def _maybe_null(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.one_of(st.none(), values), max_size=40)


texts = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
        st.sampled_from("0123456789１３８ -+@.:张伟欧阳王小明 Wei Zhang"),
    ),
    max_size=30,
)
dates = st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31))
edge_dates = st.sampled_from(
    [dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(1970, 1, 1), dt.date(1969, 12, 31)]
)
datetimes = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31))
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=True, allow_infinity=True)


@SETTINGS
@given(
    values=_maybe_null(st.one_of(dates, edge_dates)),
    rule=st.sampled_from(["year", "month", "band:1", "band:10", "band:7"]),
)
def test_generalize_dates_same_on_both_paths(values: list[Any], rule: str) -> None:
    for type_ in (pa.date32(), pa.date64()):
        column = pa.array(values, type_)
        _assert_generalized_alike(column, rule)


@SETTINGS
@given(
    values=_maybe_null(datetimes),
    unit=st.sampled_from(["s", "ms", "us"]),
    rule=st.sampled_from(["year", "month", "band:10"]),
)
def test_generalize_timestamps_same_on_both_paths(values: list[Any], unit: str, rule: str) -> None:
    column = pa.array(values, pa.timestamp(unit))
    _assert_generalized_alike(column, rule)


@SETTINGS
@given(
    values=st.one_of(
        _maybe_null(ints).map(lambda v: pa.array(v, pa.int64())),
        _maybe_null(st.integers(0, 255)).map(lambda v: pa.array(v, pa.uint8())),
        _maybe_null(floats).map(lambda v: pa.array(v, pa.float64())),
    ),
    rule=st.sampled_from(["band:1", "band:10", "band:5", "bins:18,30,65", "bins:0.5,2.5"]),
)
def test_generalize_numbers_same_on_both_paths(values: pa.Array, rule: str) -> None:
    _assert_generalized_alike(values, rule)


@SETTINGS
@given(
    values=st.one_of(
        _maybe_null(texts).map(lambda v: pa.array(v, pa.string())),
        _maybe_null(ints).map(lambda v: pa.array(v, pa.int64())),
        # Codes of one length, as zip codes are, shorter and longer than the prefix.
        st.integers(0, 6)
        .flatmap(lambda n: _maybe_null(st.text(min_size=n, max_size=n)))
        .map(lambda v: pa.array(v, pa.string())),
    ),
    rule=st.sampled_from(["prefix:0", "prefix:1", "prefix:3", "month", "year"]),
)
def test_generalize_codes_same_on_both_paths(values: pa.Array, rule: str) -> None:
    if rule in ("month", "year") and not pa.types.is_string(values.type):
        return
    _assert_generalized_alike(values, rule)


@SETTINGS
@given(values=_maybe_null(texts), kind=st.sampled_from(sorted(masking.MASKS)))
def test_masks_same_on_both_paths(values: list[str | None], kind: str) -> None:
    column = pa.array(values, pa.string())
    small, large = _both(masking, lambda: masking.mask_for(kind)(column))
    assert small == large


@SETTINGS
@given(
    rows=st.lists(
        st.tuples(st.one_of(st.none(), texts), st.one_of(st.none(), texts), st.none() | texts),
        max_size=30,
    ),
)
def test_scrub_same_on_both_paths_and_through_the_cache(
    rows: list[tuple[str | None, str | None, str | None]],
) -> None:
    text = pa.array([r[0] for r in rows], pa.string())
    names = [pa.array([r[i] for r in rows], pa.string()) for i in (1, 2)]
    small, large = _both(scrubbing, lambda: scrubbing.scrub(text, names))
    assert small == large
    cache = scrubbing.ScrubCache()
    with _path(scrubbing, small=True):
        for _ in range(2):  # filled, then answered from the cache
            out = scrubbing.scrub(text, names, cache=cache)
            assert (out.type, out.to_pylist()) == large


@pytest.mark.parametrize("module", [generalization, masking, scrubbing])
def test_a_page_is_small_and_a_large_batch_is_not(module: ModuleType) -> None:
    assert 100 <= module.SMALL_BATCH_ROWS <= 4_096
