"""Generalizations of quasi-identifiers: coarser values that many people share.

Each rule maps a column to a coarser one: ``year`` and ``month`` for dates, ``band:N``
for numbers (ages into N-wide bands) and dates (birth dates into N-year bands),
``prefix:N`` for codes (zip 100085 -> 100***), ``bins:a,b,c`` for numbers into labelled
intervals, and ``keep`` for values already
coarse (gender) that still count as quasi-identifiers. Work is done once per distinct
value. A small batch (a page of a few hundred rows) is generalized from a Python list,
which costs less than the Arrow calls' fixed overhead, and its labels are remembered for
the next pages; a large one stays columnar. Both paths give the same values (a property
test compares them).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from gateway.transforms import distinct


class GeneralizationError(ValueError):
    """A rule does not fit the column's type."""


# Up to this many values a column is generalized from a Python list. Low on purpose: the
# Arrow path has a fixed cost and then next to nothing per value, the list path a cost per
# value, so past a page or so (the k-anonymity check reads whole row groups) Arrow wins
# (docs/performance.md has the figures).
SMALL_BATCH_ROWS = 128


def _small_generalize(values: pa.Array, kind: str, argument: str) -> pa.Array | None:
    """The rule applied over a Python list, or None for the rules whose Arrow path is one
    cheap kernel call already (year, month). Dates go through ``pc.year`` first: turning
    them into ``date`` objects costs more than the rest."""
    if kind == "band":
        numbers = pc.year(values) if _is_temporal(values.type) else values
        return _remembered(f"band:{argument}", numbers, _band(int(argument)))
    if kind == "bins":
        edges = sorted(float(e) for e in argument.split(","))
        return _remembered(f"bins:{argument}", values, _bins(edges))
    if kind == "prefix":
        keep = int(argument)
        text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
        return _remembered(
            f"prefix:{argument}", text, lambda v: v[:keep] + "*" * max(len(v) - keep, 0)
        )
    return None


# Labels of values seen before, per rule and value type (equal Python values of two
# Arrow types never share a label): the pages of a dataset bring the same few values
# again and again. Each memo is bounded; past the bound, new values are computed every
# time, as on a first read.
MEMO_ENTRIES = 65_536
_memos: dict[tuple[str, pa.DataType], dict[Any, str]] = {}


def _remembered(rule: str, values: pa.Array, fn: Callable[[Any], str]) -> pa.Array:
    memo = _memos.setdefault((rule, values.type), {})
    items = values.to_pylist()
    labels: list[str | None] = list(map(memo.get, items))
    if values.null_count != labels.count(None):
        for i, item in enumerate(items):
            if labels[i] is None and item is not None:
                label = labels[i] = fn(item)
                if len(memo) < MEMO_ENTRIES:
                    memo[item] = label  # one dict store: safe beside concurrent reads
    return pa.array(labels, pa.string())


def _is_temporal(t: pa.DataType) -> bool:
    return pa.types.is_date(t) or pa.types.is_timestamp(t)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def output_type(rule: str, source: pa.DataType) -> pa.DataType:
    if rule == "keep":
        return source
    return pa.int32() if rule == "year" else pa.string()


def check_rule(rule: str, source: pa.DataType) -> None:
    kind = rule.split(":", 1)[0]
    numeric = pa.types.is_integer(source) or pa.types.is_floating(source)
    ok = {
        "keep": True,
        "year": _is_temporal(source) or _is_text(source),
        "month": _is_temporal(source) or _is_text(source),
        "band": numeric or _is_temporal(source),
        "bins": numeric,
        "prefix": _is_text(source) or pa.types.is_integer(source),
    }[kind]
    if not ok:
        raise GeneralizationError(f"generalization {rule!r} does not apply to type {source}")


def _band(width: int) -> Callable[[Any], str]:
    def label(x: Any) -> str:
        low = math.floor(x / width) * width
        return f"{low}-{low + width - 1}"

    return label


def _bins(edges: list[float]) -> Callable[[Any], str]:
    def fmt(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else str(x)

    def label(x: Any) -> str:
        i = bisect.bisect_right(edges, x)
        if i == 0:
            return f"<{fmt(edges[0])}"
        if i == len(edges):
            return f">={fmt(edges[-1])}"
        return f"{fmt(edges[i - 1])}-{fmt(edges[i])}"

    return label


def _prefix(values: pa.Array, keep: int) -> pa.Array:
    """The first ``keep`` characters, then one star per character hidden."""
    # The output is ``string`` (see output_type); large_string input is cast up front,
    # as some of the kernels below have no large_string variant.
    text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
    lengths = pc.utf8_length(text)
    bounds = pc.min_max(lengths).as_py()
    if bounds["min"] is not None and bounds["min"] == bounds["max"]:
        # Codes of one length (zip codes, most often) hide the same number of characters
        # in every row: one kernel call, whatever the batch size.
        stars = "*" * max(bounds["max"] - keep, 0)
        return pc.utf8_replace_slice(text, start=keep, stop=bounds["max"], replacement=stars)
    hidden = pc.max_element_wise(pc.subtract(lengths, keep), 0)
    stars = pc.binary_repeat(pa.scalar("*"), hidden)
    return pc.binary_join_element_wise(pc.utf8_slice_codeunits(text, 0, keep), stars, "")


def generalize(values: pa.Array, rule: str) -> pa.Array:
    check_rule(rule, values.type)
    kind, _, argument = rule.partition(":")
    if kind == "keep":
        return values
    if len(values) <= SMALL_BATCH_ROWS and isinstance(values, pa.Array):
        small = _small_generalize(values, kind, argument)
        if small is not None:
            return small
    if kind == "year":
        if _is_text(values.type):
            return pc.cast(pc.utf8_slice_codeunits(values, 0, 4), pa.int32())
        return pc.cast(pc.year(values), pa.int32())
    if kind == "month":
        if _is_text(values.type):
            return pc.utf8_slice_codeunits(values, 0, 7)
        return pc.strftime(values, format="%Y-%m")
    if kind == "band":
        if _is_temporal(values.type):
            # Dates band by year: band:10 turns 1953-04-02 into "1950-1959".
            values = pc.year(values)
        return distinct.map_array(values, _band(int(argument)), pa.string())
    if kind == "bins":
        return distinct.map_array(
            values, _bins(sorted(float(e) for e in argument.split(","))), pa.string()
        )
    if kind == "prefix":
        return _prefix(values, int(argument))
    raise GeneralizationError(f"unknown generalization {rule!r}")
