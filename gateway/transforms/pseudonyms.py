"""Keyed, per-recipient pseudonyms.

Format (fixed, documented in the README): ``p<version>_<tag>_<digest>`` where
``version`` is the key version, ``tag`` is 7 lowercase base32 characters naming the
recipient (derived from the master key: meaningless without it) and ``digest`` is 24
base32 characters (120 bits) of HMAC-SHA256 of the value under the key for
(recipient, identifier domain, version). The tag lets an officer narrow a leaked
extract to one recipient at once; the digest proves it against the source values.

HMAC runs once per distinct value of a batch (dictionary encoding), not once per row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import MutableMapping

import pyarrow as pa
import pyarrow.compute as pc

DIGEST_BYTES = 15


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=").lower()


def prefix_for(version: int, tag: bytes) -> str:
    return f"p{version}_{_b32(tag)}_"


def as_text(values: pa.Array) -> pa.Array:
    """Identifiers are pseudonymized by their canonical text form (integers as decimals)."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return values
    return pc.cast(values, pa.string())


def pseudonymize(
    values: pa.Array | pa.ChunkedArray,
    *,
    key: bytes,
    prefix: str,
    memo: MutableMapping[str, str] | None = None,
) -> pa.Array:
    """Replace every non-null value by its pseudonym; nulls stay null."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    encoded = pc.dictionary_encode(as_text(array))
    base = hmac.new(key, digestmod=hashlib.sha256)
    memo = {} if memo is None else memo
    out: list[str] = []
    for value in encoded.dictionary.to_pylist():
        pseudonym = memo.get(value)
        if pseudonym is None:
            mac = base.copy()
            mac.update(value.encode())
            pseudonym = prefix + _b32(mac.digest()[:DIGEST_BYTES])
            memo[value] = pseudonym
        out.append(pseudonym)
    return pc.take(pa.array(out, pa.string()), encoded.indices)


def pseudonym_of(value: str, *, key: bytes, prefix: str) -> str:
    """The pseudonym of one value (tracing and tests)."""
    mac = hmac.new(key, value.encode(), hashlib.sha256).digest()
    return prefix + _b32(mac[:DIGEST_BYTES])
