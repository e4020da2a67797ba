"""Keyed pseudonyms: stable per recipient and domain, unlinkable across recipients."""

from __future__ import annotations

import re

import pyarrow as pa

from gateway.keyring import Keyring
from gateway.transforms.pseudonyms import (
    PseudonymMemo,
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


def test_chunked_input_and_memo_reuse():
    key = KEYRING.pseudonym_key("user:x", "d", 1)
    memo = PseudonymMemo()
    chunked = pa.chunked_array([["a", "b"], ["a"]])
    out = pseudonymize(chunked, key=key, prefix="p1_x_", memo=memo)
    assert out.to_pylist()[0] == out.to_pylist()[2]
    assert len(memo) == 2
    again = pseudonymize(pa.array(["b", "c"]), key=key, prefix="p1_x_", memo=memo)
    assert again.to_pylist()[0] == out.to_pylist()[1]
    assert again.to_pylist()[1] == pseudonym_of("c", key=key, prefix="p1_x_")
    assert len(memo) == 3
