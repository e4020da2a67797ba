"""Differentially private grouped aggregates: thresholds, noise, bounds, validation."""

from __future__ import annotations

import statistics

import pyarrow as pa
import pytest

from gateway.transforms.privacy import AggregatePlan, Measure, Output, exact_groups, release

PLAN = AggregatePlan(
    groups=(("city", None),),
    measures=(Measure("sum", "value", (0.0, 100.0)),),
    outputs=(
        Output("n", "count", None),
        Output("total", "sum", "value"),
        Output("mean", "avg", "value"),
    ),
    min_group_size=5,
)


def data() -> pa.Table:
    cities = ["big"] * 400 + ["mid"] * 200 + ["tiny"] * 2
    values = [50.0] * 400 + [1000.0] * 200 + [7.0] * 2  # 1000 is clamped to 100
    return pa.table({"city": cities, "value": values})


def run(epsilon: float = 1.0) -> pa.Table:
    exact = exact_groups(PLAN, data().to_batches(max_chunksize=64))
    return release(PLAN, exact, epsilon=epsilon, delta=1e-6, group_types=[pa.string()]).table


def test_exact_groups_clamp_and_merge_batches():
    exact = exact_groups(PLAN, data().to_batches(max_chunksize=64)).sort_by("g0").to_pylist()
    assert [(r["g0"], r["count"], r["m0"]) for r in exact] == [
        ("big", 400, 20000.0),
        ("mid", 200, 20000.0),
        ("tiny", 2, 14.0),
    ]


def test_small_groups_are_suppressed_and_large_ones_noisy():
    results = [run() for _ in range(20)]
    for table in results:
        assert table.column("city").to_pylist() == ["big", "mid"]
        for row in table.to_pylist():
            assert 0.0 <= row["mean"] <= 100.0
    counts = [t.to_pylist()[0]["n"] for t in results]
    assert len(set(counts)) > 1  # noise, not a constant
    assert abs(statistics.mean(counts) - 400) < 10
    totals = [t.to_pylist()[1]["total"] for t in results]
    assert abs(statistics.mean(totals) - 20000) < 1000  # clamped: 200 * 100, not 200 * 1000


def test_threshold_rises_with_smaller_epsilon():
    exact = exact_groups(PLAN, data().to_batches())
    loose = release(PLAN, exact, epsilon=2.0, delta=1e-6, group_types=[pa.string()])
    tight = release(PLAN, exact, epsilon=0.2, delta=1e-6, group_types=[pa.string()])
    assert tight.threshold > loose.threshold >= PLAN.min_group_size
    assert tight.delta <= 1e-6 and loose.delta <= 1e-6


def test_no_group_by_releases_one_row():
    plan = AggregatePlan((), (), (Output("n", "count", None),), 5)
    exact = exact_groups(plan, data().to_batches())
    table = release(plan, exact, epsilon=1.0, delta=1e-6, group_types=[]).table
    assert table.num_rows == 1 and abs(table.to_pylist()[0]["n"] - 602) < 60


def test_empty_input_releases_nothing():
    exact = exact_groups(PLAN, iter([]))
    assert (
        release(PLAN, exact, epsilon=1.0, delta=1e-6, group_types=[pa.string()]).table.num_rows == 0
    )


@pytest.mark.parametrize("epsilon", [0.5, 1.0])
def test_noise_scale_follows_the_bound(epsilon: float):
    # The spread of the noisy sum is about bound / (epsilon share): far from zero.
    totals = [run(epsilon).to_pylist()[0]["total"] for _ in range(30)]
    assert statistics.pstdev(totals) > 20
