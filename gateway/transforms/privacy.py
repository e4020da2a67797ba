"""Differentially private grouped counts and sums, with OpenDP's mechanisms.

The exact per-group aggregates are computed in Arrow over clamped values; OpenDP adds
the noise and accounts for it:

* group selection and counts: ``make_laplace_threshold`` releases the noisy count of
  each group and drops every group whose noisy count falls below the threshold. Group
  keys come from the data, so a plain noisy count would still reveal that a rare group
  exists; the threshold is raised until OpenDP's own privacy map reports a delta no
  larger than the configured one.
* sums (and the non-null counts of a column): ``make_laplace`` on the vector of the
  released groups' values. One row lives in exactly one group, so the L1 sensitivity of
  the whole vector is the clamping bound (or 1 for counts).
* averages are noisy sum / noisy count: post-processing, no extra privacy cost.

The query's epsilon is split evenly over the measurements it needs (sequential
composition); different groups share each share (parallel composition). We never
sample noise ourselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import opendp.prelude as dp
import pyarrow as pa
import pyarrow.compute as pc

from gateway.transforms import generalization

GROUP_KEY = "__group"
MAX_THRESHOLD_STEPS = 40


class PrivacyError(ValueError):
    """OpenDP could not certify a measurement at the requested privacy level."""


@dataclass(frozen=True, slots=True)
class Measure:
    kind: str  # "sum" (clamped values) or "nonnull" (count of non-null values)
    column: str
    bounds: tuple[float, float] = (0.0, 1.0)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.column}"

    @property
    def sensitivity(self) -> float:
        if self.kind == "nonnull":
            return 1.0
        low, high = self.bounds
        return max(abs(low), abs(high))


@dataclass(frozen=True, slots=True)
class Output:
    alias: str
    fn: str  # count | sum | avg
    column: str | None


@dataclass(frozen=True, slots=True)
class AggregatePlan:
    groups: tuple[tuple[str, str | None], ...]  # (column, generalization rule or None)
    measures: tuple[Measure, ...]
    outputs: tuple[Output, ...]
    min_group_size: int

    @property
    def source_columns(self) -> list[str]:
        names = [g for g, _ in self.groups]
        for m in self.measures:
            if m.column not in names:
                names.append(m.column)
        return names


@dataclass
class Release:
    table: pa.Table
    epsilon: float
    delta: float
    threshold: int
    suppressed_note: str = field(default="groups whose noisy count is below the threshold")


def _partial(batch: pa.RecordBatch, plan: AggregatePlan) -> pa.Table:
    columns: dict[str, pa.Array] = {}
    for i, (name, rule) in enumerate(plan.groups):
        values = batch.column(name)
        columns[f"g{i}"] = generalization.generalize(values, rule) if rule else values
    if not plan.groups:
        columns[GROUP_KEY] = pa.array([0] * batch.num_rows, pa.int8())
    for j, m in enumerate(plan.measures):
        values = batch.column(m.column)
        if m.kind == "nonnull":
            columns[f"m{j}"] = pc.cast(pc.is_valid(values), pa.int64())
        else:
            low, high = m.bounds
            clamped = pc.max_element_wise(
                pc.min_element_wise(pc.cast(values, pa.float64()), high), low
            )
            # A missing value adds nothing: clamping keeps one row's effect within bounds.
            columns[f"m{j}"] = pc.fill_null(clamped, 0.0)
    keys = [k for k in columns if k.startswith("g") or k == GROUP_KEY]
    table = pa.table(columns)
    aggs: list[tuple[Any, str]] = [([], "count_all")] + [
        (f"m{j}", "sum") for j in range(len(plan.measures))
    ]
    return table.group_by(keys, use_threads=False).aggregate(aggs)


def exact_groups(plan: AggregatePlan, batches: Iterable[pa.RecordBatch]) -> pa.Table:
    """Per-group exact row counts and measure sums (never released as they are)."""
    partials = [_partial(b, plan) for b in batches if b.num_rows]
    keys = [f"g{i}" for i in range(len(plan.groups))] or [GROUP_KEY]
    if not partials:
        fields = [pa.field(k, pa.string()) for k in keys] + [pa.field("count", pa.int64())]
        fields += [pa.field(f"m{j}", pa.float64()) for j in range(len(plan.measures))]
        return pa.schema(fields).empty_table()
    merged = pa.concat_tables(partials)
    aggs = [("count_all", "sum")] + [(f"m{j}_sum", "sum") for j in range(len(plan.measures))]
    totals = merged.group_by(keys, use_threads=False).aggregate(aggs)
    renamed = {"count_all_sum": "count"} | {
        f"m{j}_sum_sum": f"m{j}" for j in range(len(plan.measures))
    }
    return totals.rename_columns([renamed.get(n, n) for n in totals.column_names])


def _enable_opendp() -> None:
    # OpenDP 0.16's Python bindings gate every measurement constructor, the Laplace
    # mechanisms included, behind the "contrib" feature flag (their proofs are published
    # but not yet through OpenDP's vetting process). We use only make_laplace and
    # make_laplace_threshold, each checked against its privacy map before use.
    dp.enable_features("contrib")


def _threshold_measurement(scale: float, floor: int, delta: float) -> tuple[dp.Measurement, int]:
    domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=int))
    metric = dp.l01inf_distance(dp.absolute_distance(T=int))
    # Start near the threshold a Laplace tail of this scale needs, then let OpenDP's
    # privacy map confirm it (one row changes one group's count by one: d_in (1, 1, 1)).
    threshold = max(floor, math.ceil(1 + scale * math.log(1 / (2 * delta))))
    for _ in range(MAX_THRESHOLD_STEPS):
        measurement = dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)
        _, spent_delta = measurement.map((1, 1, 1))
        if spent_delta <= delta:
            return measurement, threshold
        threshold += max(1, math.ceil(scale))
    raise PrivacyError("no threshold meets the configured delta at this epsilon")


def _vector_laplace(values: list[float], sensitivity: float, epsilon: float) -> list[float]:
    if not values:
        return []
    measurement = dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=float, nan=False)),
        dp.l1_distance(T=float),
        scale=sensitivity / epsilon,
    )
    if measurement.map(sensitivity) > epsilon * (1 + 1e-9):
        raise PrivacyError("the Laplace measurement exceeds its epsilon share")
    return [float(v) for v in measurement(values)]


def release(
    plan: AggregatePlan,
    exact: pa.Table,
    *,
    epsilon: float,
    delta: float,
    group_types: list[pa.DataType],
) -> Release:
    """The noisy, thresholded release of ``exact`` (from :func:`exact_groups`)."""
    _enable_opendp()
    share = epsilon / (1 + len(plan.measures))
    measurement, threshold = _threshold_measurement(1.0 / share, plan.min_group_size, delta)
    spent_epsilon, spent_delta = measurement.map((1, 1, 1))
    if spent_epsilon > share * (1 + 1e-9):
        raise PrivacyError("the thresholded count exceeds its epsilon share")
    counts = exact["count"].to_pylist()
    noisy = measurement({str(i): int(c) for i, c in enumerate(counts)})
    kept = sorted(int(k) for k in noisy)
    kept_counts = [max(int(noisy[str(i)]), 0) for i in kept]
    measure_values: dict[str, list[float]] = {}
    for j, m in enumerate(plan.measures):
        exact_values = exact[f"m{j}"].to_pylist()
        measure_values[m.key] = _vector_laplace(
            [float(exact_values[i]) for i in kept], m.sensitivity, share
        )
    columns: dict[str, pa.Array] = {}
    for i, (name, _) in enumerate(plan.groups):
        values = exact[f"g{i}"].take(pa.array(kept, pa.int64())) if kept else None
        columns[name] = values if values is not None else pa.array([], group_types[i])
    for out in plan.outputs:
        columns[out.alias] = _output(out, plan, kept_counts, measure_values)
    table = pa.table(columns)
    if plan.groups:
        table = table.sort_by([(name, "ascending") for name, _ in plan.groups])
    return Release(table, epsilon, spent_delta, threshold)


def _output(
    out: Output, plan: AggregatePlan, counts: list[int], values: dict[str, list[float]]
) -> pa.Array:
    if out.fn == "count" and out.column is None:
        return pa.array(counts, pa.int64())
    if out.fn == "count":
        return pa.array([max(round(v), 0) for v in values[f"nonnull:{out.column}"]], pa.int64())
    sums = values[f"sum:{out.column}"]
    if out.fn == "sum":
        return pa.array(sums, pa.float64())
    low, high = next(m.bounds for m in plan.measures if m.key == f"sum:{out.column}")
    # Post-processing: the ratio of two noisy releases, kept inside the declared bounds.
    return pa.array(
        [min(max(s / max(c, 1), low), high) for s, c in zip(sums, counts, strict=True)],
        pa.float64(),
    )
