"""Keyed pseudonyms: stable per recipient and domain, unlinkable across recipients."""

from __future__ import annotations

import random
import re
import threading

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.access.keyring import Keyring
from gateway.transforms import pseudonyms
from gateway.transforms.pseudonyms import (
    PseudonymTable,
    prefix_for,
    pseudonym_of,
    pseudonymize,
)

KEYRING = Keyring(bytes(range(32)))
FORMAT = re.compile(r"^p1_[a-z2-7]{7}_[a-z2-7]{24}$")


def pseudonyms_for(recipient: str, domain: str, values: list[object]) -> list[str | None]:
    key = KEYRING.pseudonym_key(recipient, domain, 1)
    prefix = prefix_for(1, KEYRING.recipient_tag(recipient, 1))
    return pseudonymize(pa.array(values), key=key, prefix=prefix).to_pylist()


def test_format_and_nulls():
    out = pseudonyms_for("org:surgibot", "patient", ["P1", None, "P2", "P1"])
    assert out[1] is None
    assert out[0] == out[3] != out[2]
    assert all(FORMAT.match(p) for p in out if p)


def test_stable_within_recipient_and_domain():
    assert pseudonyms_for("org:a", "patient", ["P1"]) == pseudonyms_for("org:a", "patient", ["P1"])


def test_different_recipients_and_domains_do_not_link():
    a = pseudonyms_for("org:a", "patient", ["P1", "P2"])
    b = pseudonyms_for("org:b", "patient", ["P1", "P2"])
    c = pseudonyms_for("org:a", "customer", ["P1", "P2"])
    assert not set(a) & set(b)
    assert not set(a) & set(c)
    # the recipient tag is shared by one recipient's pseudonyms, and differs across them
    assert {p.split("_")[1] for p in a} == {p.split("_")[1] for p in c}
    assert {p.split("_")[1] for p in a} != {p.split("_")[1] for p in b}


def test_integers_are_keyed_by_their_decimal_text():
    key = KEYRING.pseudonym_key("user:x", "d", 1)
    prefix = prefix_for(1, KEYRING.recipient_tag("user:x", 1))
    as_int = pseudonymize(pa.array([42], pa.int64()), key=key, prefix=prefix).to_pylist()
    assert as_int == [pseudonym_of("42", key=key, prefix=prefix)]


def test_chunked_input_and_table_reuse():
    key = KEYRING.pseudonym_key("user:x", "d", 1)
    table = PseudonymTable()
    chunked = pa.chunked_array([["a", "b"], ["a"]])
    out = pseudonymize(chunked, key=key, prefix="p1_x_", table=table)
    assert out.to_pylist()[0] == out.to_pylist()[2]
    assert len(table) == 2
    again = pseudonymize(pa.array(["b", "c"]), key=key, prefix="p1_x_", table=table)
    assert again.to_pylist()[0] == out.to_pylist()[1]
    assert again.to_pylist()[1] == pseudonym_of("c", key=key, prefix="p1_x_")
    assert len(table) == 3


VALUES = ["", "a", "P1", "héllo wörld", "病人-001", "x" * 200, "U0000042", None]


@pytest.mark.parametrize("key", [b"\x00" * 32, bytes(range(32)), b"k" * 64, b"long" * 40])
def test_every_path_matches_the_reference_hmac(key: bytes):
    """The vectorized keying (precomputed HMAC pads, table-based base32) and the table
    lookups produce exactly what HMAC-SHA256 + base32 of each value gives."""
    prefix = "p3_abcdefg_"
    expected = [None if v is None else pseudonym_of(v, key=key, prefix=prefix) for v in VALUES]
    direct = pseudonymize(pa.array(VALUES), key=key, prefix=prefix)
    table = PseudonymTable()
    cold = pseudonymize(pa.array(VALUES), key=key, prefix=prefix, table=table)
    warm = pseudonymize(pa.array(VALUES[::-1]), key=key, prefix=prefix, table=table)
    as_dict = pseudonymize(pa.array(VALUES), key=key, prefix=prefix, as_dictionary=True)
    assert direct.to_pylist() == expected
    assert cold.to_pylist() == expected
    assert warm.to_pylist() == expected[::-1]
    assert as_dict.to_pylist() == expected
    assert len(table) == len(VALUES) - 1


def test_a_small_batch_against_a_big_table_is_keyed_directly(monkeypatch):
    monkeypatch.setattr(pseudonyms, "MIRRORED_ENTRIES", 500)  # too big for its dict
    key = KEYRING.pseudonym_key("user:x", "d", 1)
    table = PseudonymTable()
    pseudonymize(pa.array([f"v{i}" for i in range(1000)]), key=key, prefix="p1_x_", table=table)
    out = pseudonymize(pa.array(["v1", "new"]), key=key, prefix="p1_x_", table=table)
    assert out.to_pylist() == [pseudonym_of(v, key=key, prefix="p1_x_") for v in ["v1", "new"]]
    assert len(table) == 1000  # bypassed: "new" was keyed without a table lookup


def test_pages_are_looked_up_in_a_dict_and_only_new_values_keyed(monkeypatch):
    key = KEYRING.pseudonym_key("user:x", "d", 1)
    table = PseudonymTable()
    pseudonymize(pa.array([f"v{i}" for i in range(1000)]), key=key, prefix="p1_x_", table=table)
    keyed_values: list[str] = []
    real = pseudonyms.keyed

    def counted(texts: pa.Array, **kwargs: object) -> pa.Array:
        keyed_values.extend(texts.to_pylist())
        return real(texts, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pseudonyms, "keyed", counted)
    monkeypatch.setattr(pseudonyms.pc, "index_in", None)  # no whole-table hash for a page
    page = ["v1", None, "new", "v999", "new", "newer"]
    for _ in range(2):
        out = pseudonymize(pa.array(page), key=key, prefix="p1_x_", table=table)
        assert out.to_pylist() == _reference(page, key, "p1_x_")
    assert keyed_values == ["new", "newer"]  # once each, then from the table
    assert len(table) == 1002
    table.clear()
    assert pseudonymize(pa.array(page), key=key, prefix="p1_x_", table=table).to_pylist() == (
        _reference(page, key, "p1_x_")
    )
    assert len(table) == 4


def test_a_page_of_a_refused_table_is_keyed_and_not_remembered():
    key = KEYRING.pseudonym_key("user:x", "d", 1)
    table = PseudonymTable(admit=lambda _table, _count: False)
    for _ in range(2):
        out = pseudonymize(pa.array(["a", "b", "a"]), key=key, prefix="p1_x_", table=table)
        assert out.to_pylist() == _reference(["a", "b", "a"], key, "p1_x_")
    assert len(table) == 0


def test_a_refused_table_still_pseudonymizes():
    key = KEYRING.pseudonym_key("user:x", "d", 1)
    table = PseudonymTable(admit=lambda _table, _count: False)
    out = pseudonymize(pa.array(["a", None, "a", "b"]), key=key, prefix="p1_x_", table=table)
    expected = [pseudonym_of("a", key=key, prefix="p1_x_"), None]
    assert out.to_pylist() == [*expected, expected[0], pseudonym_of("b", key=key, prefix="p1_x_")]
    assert len(table) == 0


def test_large_strings_and_integers_share_a_table_with_strings():
    key = KEYRING.pseudonym_key("user:x", "d", 1)
    table = PseudonymTable()
    first = pseudonymize(pa.array(["7", "8"]), key=key, prefix="p1_x_", table=table)
    wide = pseudonymize(
        pa.array(["8", "9"], pa.large_string()), key=key, prefix="p1_x_", table=table
    )
    ints = pseudonymize(pa.array([7, 9], pa.int64()), key=key, prefix="p1_x_", table=table)
    assert wide.to_pylist()[0] == first.to_pylist()[1]
    assert ints.to_pylist() == [first.to_pylist()[0], wide.to_pylist()[1]]
    assert len(table) == 3


def _reference(values: list[object], key: bytes, prefix: str) -> list[str | None]:
    return [None if v is None else pseudonym_of(str(v), key=key, prefix=prefix) for v in values]


def test_dictionary_encoded_values_match_the_reference():
    """A column the store hands over dictionary-encoded: the dictionary is mapped once,
    every row gets its value's pseudonym, nulls stay null, slices and all."""
    key = KEYRING.pseudonym_key("user:x", "d", 1)
    values = [None if i % 7 == 0 else f"U{i % 30:03d}" for i in range(500)]
    encoded = pa.array(values).dictionary_encode()
    table = PseudonymTable()
    for array in (encoded, encoded.slice(100, 300), encoded.slice(3, 5)):
        out = pseudonymize(array, key=key, prefix="p1_x_", table=table)
        assert out.type == pa.string()
        assert out.to_pylist() == _reference(array.to_pylist(), key, "p1_x_")
    ints = pa.array([5, None, 6, 5] * 10, pa.int64()).dictionary_encode()
    out = pseudonymize(ints, key=key, prefix="p1_x_", table=table)
    assert out.to_pylist() == _reference(ints.to_pylist(), key, "p1_x_")


def test_a_dictionary_seen_again_reuses_its_positions_only_while_they_hold():
    key = KEYRING.pseudonym_key("user:x", "d", 1)
    dictionary = pa.array([f"v{i}" for i in range(200)])
    indices = pa.array([i % 200 for i in range(1000)], pa.int32())
    column = pa.DictionaryArray.from_arrays(indices, dictionary)
    table = PseudonymTable()
    cold = pseudonymize(column, key=key, prefix="p1_x_", table=table)
    expected = _reference(column.to_pylist(), key, "p1_x_")
    assert cold.to_pylist() == expected
    # The same dictionary again (another slice of the same column, as the next read
    # of a cached file brings it): same pseudonyms without a lookup.
    lookups: list[int] = []
    real = pc.index_in

    def counted(*args: object, **kwargs: object) -> pa.Array:
        lookups.append(1)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pseudonyms.pc, "index_in", counted)
        assert pseudonymize(column.slice(0), key=key, prefix="p1_x_", table=table) == cold
        assert lookups == []
        # Equal values in other memory are looked up, not assumed.
        copy = pa.DictionaryArray.from_arrays(indices, pa.array(dictionary.to_pylist()))
        assert pseudonymize(copy, key=key, prefix="p1_x_", table=table) == cold
        assert len(lookups) == 1
        # The table grew since (a page, looked up in its dict): the positions are
        # recomputed, and still right.
        pseudonymize(pa.array(["new"] * 40), key=key, prefix="p1_x_", table=table)
        again = pseudonymize(column, key=key, prefix="p1_x_", table=table)
        assert again.to_pylist() == expected
        assert len(lookups) == 2
        table.clear()
        assert pseudonymize(column, key=key, prefix="p1_x_", table=table) == cold
    assert len(table) == 200


def test_remembered_positions_never_cross_recipients():
    dictionary = pa.array([f"v{i}" for i in range(100)])
    column = pa.DictionaryArray.from_arrays(pa.array([i % 100 for i in range(400)]), dictionary)
    outs = []
    for recipient in ("org:a", "org:b"):
        key = KEYRING.pseudonym_key(recipient, "d", 1)
        prefix = prefix_for(1, KEYRING.recipient_tag(recipient, 1))
        table = PseudonymTable()
        for _ in range(2):
            out = pseudonymize(column, key=key, prefix=prefix, table=table)
            assert out.to_pylist() == _reference(column.to_pylist(), key, prefix)
        outs.append(set(out.to_pylist()))
    assert not outs[0] & outs[1]


def test_pages_and_bulk_lookups_share_a_table_across_threads():
    # Pages (the dict) and bulk reads (Arrow lookups) grow one table concurrently; every
    # answer must still be each value's own pseudonym.
    key = KEYRING.pseudonym_key("user:x", "d", 1)
    table = PseudonymTable()
    failures: list[str] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(60):
            size = rng.choice([5, 100, 256, 2000])
            values = [f"v{rng.randrange(5000)}" for _ in range(size)]
            out = pseudonymize(pa.array(values), key=key, prefix="p1_x_", table=table)
            if out.to_pylist() != _reference(values, key, "p1_x_"):
                failures.append(f"reader {seed}, a batch of {size}")

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    # The dict, grown in place beside the table, holds exactly the table's entries.
    held = table._mirror
    assert held is not None and held[0] is table._snapshot
    keys, values = held[0]
    assert held[1] == dict(zip(keys.to_pylist(), values.to_pylist(), strict=True))


# -- the inverted lookup (a table much larger than the batch) --------------------------


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.lists(st.one_of(st.none(), st.text(alphabet="abcdé", max_size=3)), max_size=30),
    st.lists(st.text(alphabet="abcdé", max_size=3), max_size=80),
)
def test_positions_in_matches_index_in(texts: list[str | None], keys: list[str]) -> None:
    from gateway.transforms.pseudonyms import _positions_in

    batch = pa.array(texts, pa.string())
    table = pa.array(keys, pa.string())
    got = _positions_in(batch, table)
    want = pc.index_in(batch, value_set=table)
    assert got.type == want.type
    # A repeated key may answer with either of its positions: compare the keys found.
    assert [None if i is None else keys[i] for i in got.to_pylist()] == [
        None if i is None else keys[i] for i in want.to_pylist()
    ]
