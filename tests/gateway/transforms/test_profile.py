"""Profiles applied to batches: columns a store derived ahead are taken as they come."""

from __future__ import annotations

import hashlib

import pyarrow as pa

from gateway.access.keyring import Keyring
from gateway.read.views import build_view
from gateway.transforms.profile import BatchTransformer, derived_name
from gateway.transforms.pseudonym_cache import PseudonymCache
from tests.gateway.conftest import dataset_and_schema

DATASET, SCHEMA = dataset_and_schema(
    {
        "pid": ({"class": "identifier", "domain": "patient"}, pa.string()),
        "phone": ({"class": "direct_identifier", "mask": "phone"}, pa.string()),
        "age": ({"class": "quasi_identifier", "generalize": "band:10"}, pa.int64()),
        "zip": ({"class": "quasi_identifier", "generalize": "prefix:2"}, pa.string()),
        "sex": ({"class": "quasi_identifier", "generalize": "keep"}, pa.string()),
        "notes": ("free_text", pa.string()),
    }
)
TABLE = pa.table(
    {
        "pid": [f"P{i:04d}" for i in range(300)],
        "phone": [f"139{i:08d}" for i in range(300)],
        "age": list(range(300)),
        "zip": [f"{100000 + 37 * i}" for i in range(300)],
        "sex": [("F", "M", None)[i % 3] for i in range(300)],
        "notes": [f"call 139{i:08d}" for i in range(300)],
    },
    schema=SCHEMA,
)


def sha256(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def transformer_for(profile: str, recipient: str, key_version: int = 1) -> BatchTransformer:
    view = build_view("t", DATASET, SCHEMA, profile)  # type: ignore[arg-type]
    return BatchTransformer(
        view,
        view.returned,
        keyring=Keyring(b"\x02" * 32),
        recipient=recipient,
        key_version=key_version,
        pseudonym_cache=PseudonymCache(10_000),
    )


def transformer(profile: str) -> BatchTransformer:
    return transformer_for(profile, "x")


def with_derived(batch: pa.RecordBatch, columns: dict[str, pa.Array]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [*batch.columns, *columns.values()], names=[*batch.schema.names, *columns]
    )


def test_columns_transformed_row_by_row_may_be_derived_but_nothing_else():
    # "sex" is generalized by "keep": its values leave as they are, nothing to derive.
    anonymized = transformer("anonymized")
    assert [d.name for d in anonymized.derivations()] == [
        derived_name(anonymized.view.columns[c]) for c in ("pid", "age", "zip", "notes")
    ]
    pseudonymized = transformer("pseudonymized")
    assert [d.name for d in pseudonymized.derivations()] == [
        derived_name(pseudonymized.view.columns[c]) for c in ("pid", "phone", "notes")
    ]
    # The key names the treatment, the column and its rule (for free text, the names
    # scrubbed from it; for pseudonyms, the domain, recipient and key version): another
    # rule, another key.
    assert [d.key for d in anonymized.derivations()] == [
        (
            "pseudonym",
            "pid",
            ("patient", "x", 1, sha256(Keyring(b"\x02" * 32).pseudonym_key("x", "patient", 1))),
        ),
        ("generalize", "age", "band:10"),
        ("generalize", "zip", "prefix:2"),
        ("scrub", "notes", ("phone",)),
    ]
    assert pseudonymized.derivations()[1].key == ("mask", "phone", "phone")
    # A bulk read leaves the recipient's pseudonyms out (it maps whole dictionaries),
    # and so does a gateway that keeps no pseudonyms in memory.
    shared = ["generalize", "generalize", "scrub"]
    assert [d.key[0] for d in anonymized.derivations(pseudonyms=False)] == shared
    for cache in (None, PseudonymCache(0)):
        view = anonymized.view
        keeps_none = BatchTransformer(
            view, view.returned, keyring=Keyring(b"\x02" * 32), recipient="x", pseudonym_cache=cache
        )
        assert [d.key[0] for d in keeps_none.derivations()] == shared


def test_a_pseudonym_column_is_derived_for_one_recipient_and_key_version_only():
    first, second = transformer_for("anonymized", "x"), transformer_for("anonymized", "y")
    rotated = transformer_for("anonymized", "x", key_version=2)
    derived = [t.derivations()[0] for t in (first, second, rotated)]
    assert len({d.key for d in derived}) == 3
    other_master = BatchTransformer(
        first.view,
        first.view.returned,
        keyring=Keyring(b"\x03" * 32),
        recipient="x",
        pseudonym_cache=PseudonymCache(10_000),
    )
    assert other_master.derivations()[0].key != derived[0].key
    built = [d.build(TABLE) for d in derived]
    assert built[0] != built[1] and built[0] != built[2]
    # What is built is what the recipient's own pages get, and nobody else's.
    for apply, column in zip((first, second, rotated), built, strict=True):
        batch = TABLE.slice(10, 5).combine_chunks().to_batches()[0]
        assert apply(batch.select(apply.source_columns)).column("pid") == column.slice(10, 5)


def test_a_derivation_over_the_whole_table_equals_the_transform_of_any_slice():
    for profile in ("anonymized", "pseudonymized"):
        apply = transformer(profile)
        whole = {d.name: d.build(TABLE) for d in apply.derivations()}
        for offset, length in ((0, 300), (0, 7), (123, 100), (299, 1)):
            batch = TABLE.slice(offset, length).combine_chunks().to_batches()[0]
            plain = apply(batch.select(apply.source_columns))
            sliced = {name: column.slice(offset, length) for name, column in whole.items()}
            assert apply(with_derived(batch, sliced)) == plain


def test_a_derived_column_in_the_batch_is_taken_as_it_is():
    apply = transformer("anonymized")
    batch = TABLE.slice(0, 3).combine_chunks().to_batches()[0]
    marker = pa.array(["a", "b", "c"])
    out = apply(with_derived(batch, {derived_name(apply.view.columns["age"]): marker}))
    assert out.column("age") == marker
    assert out.column("zip").to_pylist() == ["10****", "10****", "10****"]
    # What leaves has the view's columns only, never the derived ones.
    assert out.schema == apply.schema
