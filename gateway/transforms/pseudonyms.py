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
from collections.abc import Callable

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


def _digests(key: bytes, values: list[bytes]) -> pa.Array:
    """The 24-character digests of ``values``, built without a per-value string step.

    15 bytes are exactly 24 base32 characters, so the concatenated digests encode in one
    call and split at every 24th character."""
    macs = b"".join(hmac.digest(key, v, "sha256")[:DIGEST_BYTES] for v in values)
    text = base64.b32encode(macs).lower()
    width = DIGEST_BYTES * 8 // 5
    offsets = pa.array(range(0, width * len(values) + 1, width), pa.int32())
    return pa.StringArray.from_buffers(len(values), offsets.buffers()[1], pa.py_buffer(text))


class PseudonymMemo:
    """Pseudonyms already computed in one read, kept as two aligned Arrow arrays so that
    a batch is mapped with vectorized lookups; only values never seen are keyed."""

    def __init__(self) -> None:
        self._keys = pa.array([], pa.string())
        self._values = pa.array([], pa.string())

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, texts: pa.Array, make: Callable[[pa.Array], pa.Array]) -> pa.Array:
        """The pseudonym of every value of ``texts`` (distinct, non-null strings)."""
        positions = pc.index_in(texts, value_set=self._keys)
        unseen = pc.is_null(positions)
        missing = pc.filter(texts, unseen)
        if len(missing):
            first = len(self._keys)
            self._keys = pa.concat_arrays([self._keys, missing])
            self._values = pa.concat_arrays([self._values, make(missing).cast(pa.string())])
            # The new values sit at the end, in the order they appear in ``texts``.
            fresh = pa.array(range(first, first + len(missing)), positions.type)
            positions = pc.replace_with_mask(positions, unseen, fresh)
        return pc.take(self._values, positions)


def pseudonymize(
    values: pa.Array | pa.ChunkedArray,
    *,
    key: bytes,
    prefix: str,
    memo: PseudonymMemo | None = None,
    as_dictionary: bool = False,
) -> pa.Array:
    """Replace every non-null value by its pseudonym; nulls stay null.

    The HMAC runs once per distinct value. ``memo`` carries pseudonyms across the
    batches of one read. With ``as_dictionary`` the result stays dictionary-encoded
    (one pseudonym per distinct value plus an index per row)."""
    if (
        as_dictionary
        and isinstance(values, pa.ChunkedArray)
        and pa.types.is_dictionary(values.type)
        and values.num_chunks > 0
    ):
        # One shared dictionary for all chunks: key it once, keep every chunk's indices.
        unified = values.unify_dictionaries()
        mapped = pseudonymize(unified.chunk(0).dictionary, key=key, prefix=prefix, memo=memo)
        return pa.chunked_array(
            [pa.DictionaryArray.from_arrays(c.indices, mapped) for c in unified.chunks]
        )
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(array.type):
        encoded = array
        dictionary = as_text(array.dictionary)
    else:
        encoded = pc.dictionary_encode(as_text(array))
        dictionary = encoded.dictionary
    if memo is None:
        fresh = dictionary.cast(pa.binary()).to_pylist()
        pseudonyms = pc.binary_join_element_wise(prefix, _digests(key, fresh), "")
    else:
        pseudonyms = memo.lookup(
            dictionary,
            lambda new: pc.binary_join_element_wise(
                prefix, _digests(key, new.cast(pa.binary()).to_pylist()), ""
            ),
        )
    if as_dictionary:
        return pa.DictionaryArray.from_arrays(encoded.indices, pseudonyms)
    return pc.take(pseudonyms, encoded.indices)


def pseudonym_of(value: str, *, key: bytes, prefix: str) -> str:
    """The pseudonym of one value (tracing and tests)."""
    mac = hmac.new(key, value.encode(), hashlib.sha256).digest()
    return prefix + _b32(mac[:DIGEST_BYTES])
