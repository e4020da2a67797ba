"""k-anonymity (and optional l-diversity) over a released table, applied batch by batch.

After generalization, every row carries a combination of quasi-identifier values. A row
is released only when its combination occurs at least k times in the *whole* released
table, not just in one page (and, with l-diversity, the rows sharing it hold at least l
distinct values of the sensitive column); otherwise it is suppressed. The released table
is what the caller hands to :meth:`ClassIndex.build`: the gateway passes the rows a
grant's row filters admit (``gateway.read.anonymity``). The class sizes come from one
streamed pass over the quasi-identifier columns; afterwards deciding a batch is
vectorized: each generalized column is mapped to its index in that column's table-wide
dictionary, the indices are combined into one integer code per row, and the code is
looked up in the set of releasable codes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connectors import Derived, derived_in, derived_name
from gateway.transforms import generalization

COUNT = "__count"
# Batches up to this many rows are decided with Python dicts instead of Arrow kernels.
SMALL_BATCH_ROWS = 256
# Source values whose code term one index remembers, per quasi-identifier column (a
# few MB per index at most; past it, pages compute the terms they need each time).
MAX_REMEMBERED_VALUES = 16_384
# Combinations of source values one index remembers the decision for (a few MB at most).
MAX_REMEMBERED_ROWS = 65_536
_MAX_CODE = 2**62


class AnonymityError(ValueError):
    """The quasi-identifiers cannot be indexed safely; the read must be refused."""


@dataclass(frozen=True, slots=True)
class QiSpec:
    """Which columns are quasi-identifiers and how each is generalized."""

    columns: tuple[tuple[str, str], ...]  # (column, generalization rule)
    k: int
    l_column: str | None = None
    l: int = 1  # noqa: E741 - the l of l-diversity

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def source_columns(self) -> list[str]:
        extra = [self.l_column] if self.l_column and self.l_column not in self.names else []
        return self.names + extra


def generalized(batch: pa.RecordBatch, spec: QiSpec) -> list[pa.Array]:
    return [generalization.generalize(batch.column(name), rule) for name, rule in spec.columns]


def _class_counts(batch: pa.RecordBatch, spec: QiSpec) -> pa.Table:
    columns = {f"q{i}": values for i, values in enumerate(generalized(batch, spec))}
    keys = list(columns)
    if spec.l_column:
        columns["s"] = batch.column(spec.l_column)
        keys.append("s")
    table = pa.table(columns)
    return table.group_by(keys, use_threads=False).aggregate([([], "count_all")])


# The batch column a derived keep mask arrives as: never a store's own name.
KEPT_COLUMN = derived_name("kept")


class ClassIndex:
    """The releasable quasi-identifier combinations of one released table (a dataset
    version under one grant's row filters)."""

    def __init__(
        self,
        spec: QiSpec,
        dictionaries: list[pa.Array],
        allowed: pa.Array,
        released_share: float = 1.0,
    ) -> None:
        self.spec = spec
        # Names this index apart from every other (derived keep masks are keyed by it).
        self.token = uuid.uuid4().hex
        # The share of the table's rows that may be released: how many rows a page
        # should expect to read per row it returns.
        self.released_share = released_share
        self._dictionaries = dictionaries
        self._allowed = allowed
        self._allowed_set: set[int] | None = None
        self._position_maps: list[dict[Any, int]] | None = None
        # Per quasi-identifier and source type: source value -> its term of the row's
        # code, so a page's rows are coded without generalizing them again (see
        # _keep_small). The type is part of the key: one instant in two time zones, or
        # one count in two units, views as the same integer.
        self._terms: dict[tuple[int, pa.DataType], dict[Any, int]] = {}
        # Per source types: combination of source values -> released or not.
        self._decided: dict[tuple[pa.DataType, ...], dict[tuple[Any, ...], bool]] = {}
        # Python's float equality (NaN, -0.0) is not Arrow's: floats stay on Arrow.
        self._exact_in_python = not any(pa.types.is_floating(d.type) for d in dictionaries)
        self._strides: list[int] = []
        stride = 1
        for dictionary in dictionaries:
            self._strides.append(stride)
            stride *= len(dictionary) + 1  # +1: a value the index has never seen
        if stride >= _MAX_CODE:
            raise AnonymityError("too many distinct quasi-identifier combinations to index")

    @classmethod
    def build(cls, spec: QiSpec, batches: Iterable[pa.RecordBatch]) -> ClassIndex:
        partials = [_class_counts(b, spec) for b in batches if b.num_rows]
        keys = [f"q{i}" for i in range(len(spec.columns))]
        if not partials:
            empty = [
                pa.array([], generalization.output_type(r, pa.string())) for _, r in spec.columns
            ]
            return cls(spec, empty, pa.array([], pa.int64()))
        merged = pa.concat_tables(partials)
        group_keys = keys + (["s"] if spec.l_column else [])
        totals = merged.group_by(group_keys, use_threads=False).aggregate([("count_all", "sum")])
        if spec.l_column:
            # One row per (class, sensitive value): the class size is the sum, and the
            # number of rows is the number of distinct sensitive values (nulls included).
            totals = totals.group_by(keys, use_threads=False).aggregate(
                [("count_all_sum", "sum"), ([], "count_all")]
            )
            class_sizes, diversity = totals["count_all_sum_sum"], totals["count_all"]
            keep = pc.and_(
                pc.greater_equal(class_sizes, spec.k), pc.greater_equal(diversity, spec.l)
            )
        else:
            keep = pc.greater_equal(totals["count_all_sum"], spec.k)
        sizes = totals["count_all_sum_sum" if spec.l_column else "count_all_sum"]
        keep = keep.combine_chunks() if isinstance(keep, pa.ChunkedArray) else keep
        rows, released = pc.sum(sizes).as_py() or 0, pc.sum(pc.filter(sizes, keep)).as_py() or 0
        dictionaries = [pc.unique(totals[key].combine_chunks()) for key in keys]
        index = cls(spec, dictionaries, pa.array([], pa.int64()), released / rows if rows else 1.0)
        codes = index._codes([totals[key].combine_chunks() for key in keys])
        index._allowed = pc.filter(codes, keep)
        return index

    def _codes(self, columns: list[pa.Array]) -> pa.Array:
        code: pa.Array | None = None
        for values, dictionary, stride in zip(
            columns, self._dictionaries, self._strides, strict=True
        ):
            position = pc.index_in(values, value_set=dictionary, skip_nulls=False)
            term = pc.fill_null(pc.cast(position, pa.int64()), len(dictionary))
            if stride != 1:
                term = pc.multiply(term, stride)
            code = term if code is None else pc.add(code, term)
        if code is None:
            raise AnonymityError("no quasi-identifier to index")
        return code

    def derivation(self) -> Derived:
        """``keep`` over a whole table, for a store to compute once per table version
        (see ``Scan.derived``); the key is this index's own token, so no other
        index's answer is ever taken for it, and the store does not hold the index."""

        def build(table: pa.Table) -> pa.Array:
            names = self.spec.names
            return self.keep(
                pa.RecordBatch.from_arrays([table.column(n).combine_chunks() for n in names], names)
            )

        return Derived(KEPT_COLUMN, ("kept", self.token), build)

    def kept(self, batch: pa.RecordBatch) -> pa.BooleanArray:
        """``keep``, taken from the batch when its store derived it (``derivation``)."""
        found = derived_in(batch, KEPT_COLUMN)
        return found if found is not None else self.keep(batch)

    def keep(self, batch: pa.RecordBatch) -> pa.BooleanArray:
        """True for the rows whose combination may be released."""
        if batch.num_rows == 0:
            return pa.array([], pa.bool_())
        if batch.num_rows <= SMALL_BATCH_ROWS and self._exact_in_python:
            sources = [batch.column(name) for name in self.spec.names]
            if not any(pa.types.is_floating(c.type) for c in sources):
                return self._keep_small(sources)
        codes = self._codes(generalized(batch, self.spec))
        return pc.fill_null(pc.is_in(codes, value_set=self._allowed), False)

    def _keep_small(self, sources: list[pa.Array]) -> pa.BooleanArray:
        """``keep`` for a few rows, from Python dicts: each of the dozen Arrow calls of
        the vectorized path costs more than a page's work. A row whose combination of
        source values was decided before is answered from that decision (up to
        MAX_REMEMBERED_ROWS combinations per index); the others are coded from terms
        (see ``_keep_by_terms``)."""
        columns = [_hashable(source).to_pylist() for source in sources]
        rows = list(zip(*columns, strict=True))
        # The types are part of the key, as for the terms.
        decided = self._decided.setdefault(tuple(source.type for source in sources), {})
        remembered = list(map(decided.get, rows))
        if None not in remembered:
            return pa.array(remembered, pa.bool_())
        flags = self._keep_by_terms(sources, columns)
        if len(decided) + len(rows) <= MAX_REMEMBERED_ROWS:
            decided.update(zip(rows, flags, strict=True))  # one update: atomic for readers
        return pa.array(flags, pa.bool_())

    def _keep_by_terms(self, sources: list[pa.Array], columns: list[list[Any]]) -> list[bool]:
        """Each row's code, summed from its values' terms; a value first seen is
        generalized (by the same function as the vectorized path) once per index, and
        its term remembered, up to MAX_REMEMBERED_VALUES per column."""
        allowed = self._allowed_set
        if allowed is None:
            # Built on first use; a race only builds equal sets twice.
            allowed = self._allowed_set = set(self._allowed.to_pylist())
        per_column: list[Iterable[int]] = []
        for i, (source, values) in enumerate(zip(sources, columns, strict=True)):
            terms = self._terms.setdefault((i, source.type), {})
            unknown = set(values).difference(terms)
            if unknown:
                found = self._new_terms(i, source, {v: values.index(v) for v in unknown})
                if len(terms) + len(found) > MAX_REMEMBERED_VALUES:
                    per_column.append([found[v] if v in found else terms[v] for v in values])
                    continue
                terms.update(found)  # one dict update: atomic for concurrent readers
            per_column.append(map(terms.__getitem__, values))
        codes = map(sum, zip(*per_column, strict=True))
        return list(map(allowed.__contains__, codes))

    def _new_terms(self, i: int, source: pa.Array, rows: dict[Any, int]) -> dict[Any, int]:
        """The code terms of values first seen at ``rows`` (value -> a row holding it)."""
        _, rule = self.spec.columns[i]
        picked = source.take(pa.array(list(rows.values()), pa.int64()))
        labels = generalization.generalize(picked, rule).to_pylist()
        positions = self._positions(i)
        unseen, stride = len(self._dictionaries[i]), self._strides[i]
        return {v: positions.get(g, unseen) * stride for v, g in zip(rows, labels, strict=True)}

    def _positions(self, i: int) -> dict[Any, int]:
        if self._position_maps is None:
            self._position_maps = [
                {value: p for p, value in enumerate(d.to_pylist())} for d in self._dictionaries
            ]
        return self._position_maps[i]

    @property
    def releasable_classes(self) -> int:
        return len(self._allowed)


def _hashable(values: pa.Array) -> pa.Array:
    """``values`` in a form that turns into Python objects cheaply and compares the same:
    dates and times as their integer counts (building ``date`` objects costs ~40x more)."""
    t = values.type
    if pa.types.is_temporal(t) and t.bit_width in (32, 64):
        return values.view(pa.int32() if t.bit_width == 32 else pa.int64())
    return values


def take_kept(
    batch: pa.RecordBatch, keep: pa.BooleanArray, wanted: int
) -> tuple[pa.RecordBatch, int, bool]:
    """The first ``wanted`` kept rows of ``batch``: (rows, source rows consumed, cut short)."""
    if len(keep) <= SMALL_BATCH_ROWS:
        # A page's mask is counted in Python: three Arrow calls cost more than that.
        flags = keep.to_pylist()
        kept = flags.count(True)
        if kept > wanted:
            if 0 < wanted == flags[:wanted].count(True):
                cut = wanted
            else:
                running: Iterable[int] = accumulate(map(bool, flags))
                # The source position of the wanted-th kept row, plus one.
                cut = next((i + 1 for i, total in enumerate(running) if total == wanted), 0)
    else:
        kept = pc.sum(keep).as_py() or 0
        if kept > wanted:
            totals = pc.cumulative_sum(pc.cast(keep, pa.int64()))
            cut = pc.index(totals, pa.scalar(wanted, pa.int64())).as_py() + 1
    # Rows that are all kept need no filter: a slice of them is free.
    if kept <= wanted:
        return (batch if kept == batch.num_rows else batch.filter(keep)), batch.num_rows, False
    rows = batch.slice(0, cut)
    return (rows if cut == wanted else rows.filter(keep.slice(0, cut))), cut, True
