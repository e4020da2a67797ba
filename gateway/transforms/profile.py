"""Applies a view's treatments to Arrow record batches, batch by batch.

Every returned cell goes through its column's transform; a column whose treatment is
not known here is refused rather than passed through (fail closed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import pyarrow as pa

from connectors import Derived, derived_in
from connectors import derived_name as _derived_name
from gateway.access.keyring import Keyring
from gateway.read.views import ColumnView, DatasetView
from gateway.transforms import generalization, pseudonyms
from gateway.transforms.masking import mask_for
from gateway.transforms.pseudonym_cache import PseudonymCache
from gateway.transforms.scrubbing import ScrubCache, scrub

KEY_VERSION = 1
# Transforms a store may apply ahead to the rows of a table it holds (``Scan.derived``),
# row by row. Pseudonyms differ per recipient and key version, and their derivation's
# key names both: one recipient's column is never another's.
DERIVABLE = ("generalize", "mask", "scrub", "pseudonym")


class TransformError(Exception):
    """A column cannot be transformed safely; nothing is returned for it."""


def default_mask(column: ColumnView) -> str:
    if column.spec.mask:
        return column.spec.mask
    lowered = column.name.lower()
    for hint, kind in (
        ("phone", "phone"),
        ("mobile", "phone"),
        ("email", "email"),
        ("national_id", "national_id"),
        ("id_card", "national_id"),
        ("name", "name"),
    ):
        if hint in lowered:
            return kind
    return "generic"


class BatchTransformer:
    """Transforms batches of one read for one recipient. Pseudonyms come from a column
    the store derived for this recipient (see ``derivations``), else from
    ``pseudonym_cache`` (shared across reads) when given, else from tables private to
    this read; either way each distinct value is keyed at most once per read."""

    def __init__(
        self,
        view: DatasetView,
        output: Sequence[ColumnView],
        *,
        keyring: Keyring,
        recipient: str,
        key_version: int = KEY_VERSION,
        pseudonym_cache: PseudonymCache | None = None,
        scrub_cache: ScrubCache | None = None,
    ) -> None:
        self.view = view
        self.output = list(output)
        self._keyring = keyring
        self._recipient = recipient
        self._version = key_version
        self.key_version = key_version
        self._cache = pseudonym_cache
        self._tables: dict[str, pseudonyms.PseudonymTable] = {}
        # Shared by the reads of one process when the owner passes one in.
        self._scrub_cache = scrub_cache
        self.schema = pa.schema([pa.field(c.name, c.output_type) for c in self.output])
        # Names scrubbed from free text: the row's own direct identifiers of text type.
        self.name_columns = [
            c.name
            for c in view.columns.values()
            if c.spec.classification == "direct_identifier"
            and (pa.types.is_string(c.source_type) or pa.types.is_large_string(c.source_type))
        ]

    def derivations(self, *, pseudonyms: bool = True) -> tuple[Derived, ...]:
        """The output columns a store may compute once per table version; ``__call__``
        takes them from the batch when they are there. The recipient's pseudonym
        columns are left out without ``pseudonyms``, and where no pseudonym cache keeps
        them (a store keeps what it derives)."""
        pseudonyms = pseudonyms and self._cache is not None and self._cache.max_entries > 0
        return tuple(
            Derived(derived_name(c), (c.treatment, c.name, self._rule_of(c)), self._builder(c))
            for c in self.output
            # "keep" hands the values over as they are: nothing to derive.
            if c.treatment in DERIVABLE
            and not (c.treatment == "generalize" and c.rule == "keep")
            and (pseudonyms or c.treatment != "pseudonym")
        )

    def _rule_of(self, column: ColumnView) -> str | tuple[str | int, ...] | None:
        if column.treatment == "generalize":
            return column.rule
        if column.treatment == "scrub":
            return tuple(self.name_columns)
        if column.treatment == "pseudonym":
            domain = self._domain(column)
            key = self._keyring.pseudonym_key(self._recipient, domain, self._version)
            # The key's fingerprint too: pseudonyms under another master key are others.
            return (domain, self._recipient, self._version, hashlib.sha256(key).hexdigest()[:16])
        return default_mask(column)

    def _builder(self, column: ColumnView) -> Callable[[pa.Table], pa.Array]:
        names = [column.name]
        if column.treatment == "scrub":
            names += [n for n in self.name_columns if n != column.name]

        def build(table: pa.Table) -> pa.Array:
            values = [table.column(n).combine_chunks() for n in names]
            return self._column(column, pa.RecordBatch.from_arrays(values, names))

        return build

    @property
    def source_columns(self) -> list[str]:
        needed = [c.name for c in self.output]
        if any(c.treatment == "scrub" for c in self.output):
            needed += [n for n in self.name_columns if n not in needed]
        return needed

    def dictionary_columns(self, also_read: Sequence[str] = ()) -> tuple[str, ...]:
        """Columns this read only pseudonymizes, which the store may hand over
        dictionary-encoded (each distinct value is then mapped once); ``also_read`` are
        columns the read uses besides, as they are, and so are left out."""
        other = set(also_read)
        if any(c.treatment == "scrub" for c in self.output):
            other.update(self.name_columns)
        other.update(c.name for c in self.output if c.treatment != "pseudonym")
        return tuple(
            c.name for c in self.output if c.treatment == "pseudonym" and c.name not in other
        )

    def _domain(self, column: ColumnView) -> str:
        return column.spec.domain or f"{self.view.name}.{column.name}"

    def _pseudonymize(self, column: ColumnView, values: pa.Array) -> pa.Array:
        domain = self._domain(column)
        key = self._keyring.pseudonym_key(self._recipient, domain, self._version)
        tag = self._keyring.recipient_tag(self._recipient, self._version)
        return pseudonyms.pseudonymize(
            values,
            key=key,
            prefix=pseudonyms.prefix_for(self._version, tag),
            table=self._table(domain),
        )

    def _table(self, domain: str) -> pseudonyms.PseudonymTable:
        table = self._tables.get(domain)
        if table is None:
            if self._cache is None:
                table = pseudonyms.PseudonymTable()
            else:
                # The scope names the recipient and key version: no other recipient's
                # (or key version's) pseudonyms can be served from it.
                table = self._cache.table(
                    recipient=self._recipient, domain=domain, version=self._version
                )
            self._tables[domain] = table
        return table

    def _column(self, column: ColumnView, batch: pa.RecordBatch) -> pa.Array:
        how = column.treatment
        if how in DERIVABLE:
            found = derived_in(batch, derived_name(column))
            if found is not None:
                return found
        values = batch.column(column.name)
        if how == "value":
            return values
        if how == "pseudonym":
            return self._pseudonymize(column, values)
        if how == "mask":
            text = values if pa.types.is_string(values.type) else values.cast(pa.string())
            return mask_for(default_mask(column))(text)
        if how == "generalize":
            assert column.rule is not None
            return generalization.generalize(values, column.rule)
        if how == "scrub":
            text = values if pa.types.is_string(values.type) else values.cast(pa.string())
            names = [batch.column(n) for n in self.name_columns]
            return scrub(text, names, cache=self._scrub_cache)
        raise TransformError(f"column {column.name!r} has no transform for {how!r}")

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = [self._column(c, batch) for c in self.output]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def derived_name(column: ColumnView) -> str:
    """The batch column a derived ``column`` arrives as: never a store's own name."""
    return _derived_name(column.treatment, column.name)
