"""Generalization rules for quasi-identifiers."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from gateway.transforms.generalization import GeneralizationError, generalize, output_type


@pytest.mark.parametrize(
    ("values", "rule", "expected"),
    [
        (pa.array([dt.date(1987, 5, 3), None]), "year", [1987, None]),
        (pa.array(["1987-05-03"]), "year", [1987]),
        (pa.array([dt.datetime(2024, 2, 29, 13, 0)]), "month", ["2024-02"]),
        (pa.array(["2024-02-29"]), "month", ["2024-02"]),
        (pa.array([0, 9, 10, 37, None]), "band:10", ["0-9", "0-9", "10-19", "30-39", None]),
        (pa.array(["100085", "2000"]), "prefix:3", ["100***", "200*"]),
        (pa.array([100085], pa.int64()), "prefix:2", ["10****"]),
        (pa.array([5, 25, 75, 150]), "bins:18,65,100", ["<18", "18-65", "65-100", ">=100"]),
        (pa.array(["男", "女"]), "keep", ["男", "女"]),
    ],
)
def test_rules(values: pa.Array, rule: str, expected: list[object]):
    out = generalize(values, rule)
    assert out.to_pylist() == expected
    assert out.type == output_type(rule, values.type)


@pytest.mark.parametrize(
    ("values", "rule"),
    [(pa.array(["x"]), "band:10"), (pa.array([1.5]), "year"), (pa.array([True]), "prefix:1")],
)
def test_rules_that_do_not_fit_are_refused(values: pa.Array, rule: str):
    with pytest.raises(GeneralizationError):
        generalize(values, rule)


@pytest.mark.parametrize("rows", [3, 300])  # the list path and the vectorized path
def test_prefix_of_large_strings_matches_strings(rows: int):
    # Parquet written by pandas or polars often holds large_string columns.
    codes = (["100085", "12345", "9", None] * rows)[:rows]
    plain = generalize(pa.array(codes, pa.string()), "prefix:2")
    large = generalize(pa.array(codes, pa.large_string()), "prefix:2")
    assert large.equals(plain)
    assert large.type == output_type("prefix:2", pa.large_string())


def test_a_page_seen_again_gets_the_same_labels():
    page = pa.array([dt.date(1955, 3, 1), None, dt.date(1949, 12, 31)], pa.date32())
    first = generalize(page, "band:10").to_pylist()
    assert first == ["1950-1959", None, "1940-1949"]
    assert generalize(page, "band:10").to_pylist() == first  # from remembered labels
    assert generalize(page, "band:5").to_pylist() == ["1955-1959", None, "1945-1949"]


def test_labels_past_the_memo_bound_are_still_computed(monkeypatch):
    from gateway.transforms import generalization

    monkeypatch.setattr(generalization, "MEMO_ENTRIES", 0)
    codes = pa.array(["100085", "2000", None])
    assert generalize(codes, "prefix:2").to_pylist() == ["10****", "20**", None]
