"""Keyed, per-recipient pseudonyms.

Format (fixed, documented in the README): ``p<version>_<tag>_<digest>`` where
``version`` is the key version, ``tag`` is 7 lowercase base32 characters naming the
recipient (derived from the master key: meaningless without it) and ``digest`` is 24
base32 characters (120 bits) of HMAC-SHA256 of the value under the key for
(recipient, identifier domain, version). The tag lets an officer narrow a leaked
extract to one recipient at once; the digest proves it against the source values.

HMAC runs once per distinct value of a batch, and not at all for a value already in the
``PseudonymTable`` the caller passes (see ``gateway.transforms.pseudonym_cache``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DIGEST_BYTES = 15
DIGEST_CHARS = DIGEST_BYTES * 8 // 5
_SHA256_BLOCK = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
_B32_ALPHABET = b"abcdefghijklmnopqrstuvwxyz234567"
# Every pair of base32 characters, indexed by the 10 bits they encode.
_B32_PAIRS = np.frombuffer(
    b"".join(bytes([a, b]) for a in _B32_ALPHABET for b in _B32_ALPHABET), np.uint16
)
_TEN_BIT_SHIFTS = np.array([30, 20, 10, 0], np.uint64)
# Looking a batch up in a table builds a hash of the whole table first; keying one value
# costs about as much as hashing this many table entries. Smaller batches key directly,
# unless the table can answer them from its dict (below).
TABLE_ENTRIES_PER_KEYED_VALUE = 32
# A table of at most this many entries also keeps them in a dict, and answers a batch
# of at most PAGE_ROWS values (a page) from it: a dict lookup per value, the HMAC only
# for values it has never seen.
MIRRORED_ENTRIES = 65_536
PAGE_ROWS = 256


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=").lower()


def prefix_for(version: int, tag: bytes) -> str:
    return f"p{version}_{_b32(tag)}_"


def as_text(values: pa.Array) -> pa.Array:
    """Identifiers are pseudonymized by their canonical text form (integers as decimals),
    always as ``string`` so that it compares with a table's keys."""
    if pa.types.is_string(values.type):
        return values
    return pc.cast(values, pa.string())


def _hmac_pads(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 states after absorbing the HMAC inner and outer padded keys (RFC 2104):
    copying a state per value skips re-hashing the key twice per value."""
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_SHA256_BLOCK, b"\0")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


def _macs(key: bytes, texts: pa.Array) -> np.ndarray:
    """HMAC-SHA256 of every value of ``texts`` (non-null strings): one row of 32 bytes
    per value."""
    inner, outer = _hmac_pads(key)
    copy_inner, copy_outer = inner.copy, outer.copy
    digests = []
    for value in texts.cast(pa.binary()).to_pylist():
        h = copy_inner()
        h.update(value)
        o = copy_outer()
        o.update(h.digest())
        digests.append(o.digest())
    return np.frombuffer(b"".join(digests), np.uint8).reshape(len(texts), 32)


def _base32(macs: np.ndarray) -> np.ndarray:
    """Lowercase base32 of the first 15 bytes of each row: 24 characters per row. Each
    5-byte group is read as a big-endian 40-bit number and split into four 10-bit
    indices of a table of character pairs."""
    count = len(macs)
    padded = np.zeros((count * 3, 8), np.uint8)
    padded[:, 3:] = macs[:, :DIGEST_BYTES].reshape(count * 3, 5)
    forty = padded.view(">u8").astype(np.uint64)
    pairs = (forty >> _TEN_BIT_SHIFTS) & 1023
    return _B32_PAIRS.take(pairs).view(np.uint8).reshape(count, DIGEST_CHARS)


def _pseudonyms(prefix: str, macs: np.ndarray) -> pa.Array:
    """``prefix`` + base32 digest for each MAC, as one string array built in place:
    every pseudonym has the same width."""
    count = len(macs)
    head = np.frombuffer(prefix.encode(), np.uint8)
    width = len(head) + DIGEST_CHARS
    out = np.empty((count, width), np.uint8)
    out[:, : len(head)] = head
    out[:, len(head) :] = _base32(macs)
    if (count + 1) * width < 2**31:
        offsets = np.arange(0, (count + 1) * width, width, dtype=np.int32)
        return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(out))
    wide = np.arange(0, (count + 1) * width, width, dtype=np.int64)
    text = pa.LargeStringArray.from_buffers(count, pa.py_buffer(wide), pa.py_buffer(out))
    return text.cast(pa.string())


def keyed(texts: pa.Array, *, key: bytes, prefix: str) -> pa.Array:
    """The pseudonym of every value of ``texts`` (non-null strings), computed."""
    if len(texts) == 0:
        return pa.array([], pa.string())
    return _pseudonyms(prefix, _macs(key, texts))


class PseudonymTable:
    """Pseudonyms already computed for one (recipient, domain, key version), kept as two
    aligned Arrow arrays so that a batch is mapped with two vectorized calls (a hash
    lookup and a take); only values never seen are keyed. Safe to share between
    threads: a lookup reads one consistent snapshot, and additions replace it whole.

    ``admit(n)`` (from the owning cache) says whether ``n`` more entries may be kept; a
    refused batch is still pseudonymized, its new values are just not remembered.

    A lookup with ``remember_positions`` (a column's dictionary, which bulk reads of one
    file version share) keeps where its values sit in the table: the next lookup of the
    same array, while the table has not changed, skips the hash lookup. One such array
    is kept, and only when every value of it is in the table, so it holds no more
    values than the table does."""

    def __init__(self, admit: Callable[[PseudonymTable, int], bool] | None = None) -> None:
        self._snapshot = (pa.array([], pa.string()), pa.array([], pa.string()))
        self._positions: _Positions | None = None
        # The snapshot's entries as a dict, and the snapshot they are: pages are looked
        # up in it. Only ever added to, and a value's pseudonym never changes, so a
        # reader may use it while it grows.
        self._mirror: tuple[tuple[pa.Array, pa.Array], dict[str, str]] | None = None
        self._admit = admit
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._snapshot[0])

    def answers_pages(self) -> bool:
        """Whether a page is looked up in this table's dict (see MIRRORED_ENTRIES)."""
        return len(self) <= MIRRORED_ENTRIES

    def lookup_page(self, texts: pa.Array, *, key: bytes, prefix: str) -> pa.Array:
        """``lookup`` for a page (at most PAGE_ROWS values, strings): from the dict,
        keying only the values not in it, which the table then remembers."""
        snapshot = self._snapshot
        mirror = self._mirror_of(snapshot)
        items = texts.to_pylist()
        found = list(map(mirror.get, items))
        if found.count(None) != texts.null_count:
            # Values never seen: each keyed once, then remembered by the table.
            pairs = zip(items, found, strict=True)
            new = list(dict.fromkeys(v for v, f in pairs if f is None and v is not None))
            new_texts = pa.array(new, pa.string())
            fresh = keyed(new_texts, key=key, prefix=prefix)
            self._remember(snapshot, new_texts, fresh)
            computed = dict(zip(new, fresh.to_pylist(), strict=True))
            found = [
                computed[v] if f is None and v is not None else f
                for v, f in zip(items, found, strict=True)
            ]
        return pa.array(found, pa.string())

    def _mirror_of(self, snapshot: tuple[pa.Array, pa.Array]) -> dict[str, str]:
        held = self._mirror
        if held is not None and held[0] is snapshot:
            return held[1]
        keys, values = snapshot
        mirror = dict(zip(keys.to_pylist(), values.to_pylist(), strict=True))
        with self._lock:
            if self._snapshot is snapshot:
                self._mirror = (snapshot, mirror)
        return mirror

    def lookup(
        self, texts: pa.Array, *, key: bytes, prefix: str, remember_positions: bool = False
    ) -> pa.Array:
        """The pseudonym of every value of ``texts`` (strings; nulls stay null)."""
        snapshot = self._snapshot
        known = self._positions
        if remember_positions and known is not None and known.holds_for(snapshot, texts):
            return pc.take(snapshot[1], known.positions)
        keys, values = snapshot
        positions = _positions_in(texts, keys)
        if positions.null_count == texts.null_count:
            if remember_positions:
                self._keep_positions(snapshot, texts, positions)
            return pc.take(values, positions)
        # Values never seen: key each once, and point their rows past the known ones.
        unseen = pc.and_(pc.is_null(positions), pc.is_valid(texts))
        encoded = pc.dictionary_encode(pc.filter(texts, unseen))
        missing = encoded.dictionary
        fresh = keyed(missing, key=key, prefix=prefix)
        grown = self._remember(snapshot, missing, fresh)
        moved = pc.add(encoded.indices, pa.scalar(len(keys), encoded.indices.type))
        moved = moved.cast(positions.type)
        positions = pc.replace_with_mask(positions, unseen, moved)
        if remember_positions and grown is not None:
            # The table grew by exactly these values: the positions hold in it as well.
            self._keep_positions(grown, texts, positions)
        return pc.take(pa.concat_arrays([values, fresh]), positions)

    def _remember(
        self, seen: tuple[pa.Array, pa.Array], missing: pa.Array, fresh: pa.Array
    ) -> tuple[pa.Array, pa.Array] | None:
        """Add the entries; the new snapshot when it is ``seen`` plus exactly them."""
        with self._lock:
            if self._admit is not None and not self._admit(self, len(missing)):
                return None
            before = self._snapshot
            keys, values = before
            # A concurrent read may have added some of these too: a repeated key is
            # harmless (lookups take the first) and rare.
            self._snapshot = (
                pa.concat_arrays([keys, missing.cast(pa.string())]),
                pa.concat_arrays([values, fresh]),
            )
            # Positions kept for the old snapshot would keep it in memory, unused.
            self._positions = None
            held = self._mirror
            if held is not None and held[0] is before and self.answers_pages():
                mirror = held[1]
                new = zip(missing.cast(pa.string()).to_pylist(), fresh.to_pylist(), strict=True)
                mirror.update(new)
                self._mirror = (self._snapshot, mirror)
            else:
                self._mirror = None  # rebuilt by the next page, if still small enough
            return self._snapshot if before is seen else None

    def _keep_positions(
        self, snapshot: tuple[pa.Array, pa.Array], texts: pa.Array, positions: pa.Array
    ) -> None:
        with self._lock:
            if self._snapshot is snapshot:
                self._positions = _Positions(snapshot, texts, positions)

    def clear(self) -> None:
        with self._lock:
            self._snapshot = (pa.array([], pa.string()), pa.array([], pa.string()))
            self._positions = None
            self._mirror = None


# Above this many keys per value of a batch, a lookup hashes the batch's distinct values
# and probes the keys with them, instead of hashing every key (``index_in`` builds its
# hash of the value set anew on every call, and the table grows with the distinct
# identifiers: about 230 ms a 250k-row batch against 1M keys, against 70 ms).
INVERTED_LOOKUP_KEYS_PER_VALUE = 1


def _positions_in(texts: pa.Array, keys: pa.Array) -> pa.Array:
    """``pc.index_in(texts, value_set=keys)``: where each value of ``texts`` sits in
    ``keys`` (int32), null for nulls and for values not there. Any position of a key
    held twice may come back (a table's repeated keys carry the same pseudonym)."""
    if len(keys) <= INVERTED_LOOKUP_KEYS_PER_VALUE * len(texts):
        return pc.index_in(texts, value_set=keys)
    encoded = pc.dictionary_encode(texts)
    distinct = encoded.dictionary
    slot = pc.index_in(keys, value_set=distinct)  # each key's place among the values
    held = pc.is_valid(slot)
    at = np.full(len(distinct), -1, np.int32)
    at[pc.filter(slot, held).to_numpy()] = pc.indices_nonzero(held).to_numpy()
    per_value = pa.array(at, pa.int32(), mask=at < 0)
    # Null rows have null indices, and take keeps them null.
    return pc.take(per_value, encoded.indices)


class _Positions:
    """Where the values of one array sit in one snapshot of a table. The array is held,
    so its memory cannot be freed and reused while this is kept: an array over the very
    same buffers (Arrow buffers are never written after they are built) has the very
    same values."""

    def __init__(
        self, snapshot: tuple[pa.Array, pa.Array], texts: pa.Array, positions: pa.Array
    ) -> None:
        self.snapshot = snapshot
        self.texts = texts
        self.positions = positions

    def holds_for(self, snapshot: tuple[pa.Array, pa.Array], texts: pa.Array) -> bool:
        mine = self.texts
        if snapshot is not self.snapshot:
            return False
        if texts is mine:
            return True
        return (
            len(texts) == len(mine)
            and texts.offset == mine.offset
            and texts.type == mine.type
            and _addresses(texts) == _addresses(mine)
        )


def _addresses(array: pa.Array) -> list[int | None]:
    return [None if b is None else b.address for b in array.buffers()]


def _map_distinct(
    texts: pa.Array,
    *,
    key: bytes,
    prefix: str,
    table: PseudonymTable | None,
    shared: bool = False,
) -> pa.Array:
    """Pseudonyms of ``texts``: through ``table`` when the batch is big enough for its
    lookup to pay, else keyed directly (each distinct value once). ``shared`` says
    ``texts`` is a dictionary other reads may bring again."""
    if table is not None and not shared and len(texts) <= PAGE_ROWS and table.answers_pages():
        return table.lookup_page(texts, key=key, prefix=prefix)
    if table is not None and len(texts) * TABLE_ENTRIES_PER_KEYED_VALUE >= len(table):
        return table.lookup(texts, key=key, prefix=prefix, remember_positions=shared)
    encoded = pc.dictionary_encode(texts)
    return pc.take(keyed(encoded.dictionary, key=key, prefix=prefix), encoded.indices)


def pseudonymize(
    values: pa.Array | pa.ChunkedArray,
    *,
    key: bytes,
    prefix: str,
    table: PseudonymTable | None = None,
    as_dictionary: bool = False,
) -> pa.Array:
    """Replace every non-null value by its pseudonym; nulls stay null.

    The HMAC runs at most once per distinct value, and not for values ``table`` holds.
    With ``as_dictionary`` the result stays dictionary-encoded (one pseudonym per
    distinct value plus an index per row)."""
    if (
        as_dictionary
        and isinstance(values, pa.ChunkedArray)
        and pa.types.is_dictionary(values.type)
        and values.num_chunks > 0
    ):
        # One shared dictionary for all chunks: key it once, keep every chunk's indices.
        unified = values.unify_dictionaries()
        mapped = pseudonymize(unified.chunk(0).dictionary, key=key, prefix=prefix, table=table)
        return pa.chunked_array(
            [pa.DictionaryArray.from_arrays(c.indices, mapped) for c in unified.chunks]
        )
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(array.type) and len(array.dictionary) > len(array):
        # A few rows of a large dictionary (a filtered slice): map the rows' own values.
        array = array.dictionary.take(array.indices)
    if pa.types.is_dictionary(array.type):
        mapped = _map_distinct(
            as_text(array.dictionary), key=key, prefix=prefix, table=table, shared=True
        )
        if as_dictionary:
            return pa.DictionaryArray.from_arrays(array.indices, mapped)
        return pc.take(mapped, array.indices)
    texts = as_text(array)
    if as_dictionary:
        encoded = pc.dictionary_encode(texts)
        mapped = _map_distinct(encoded.dictionary, key=key, prefix=prefix, table=table)
        return pa.DictionaryArray.from_arrays(encoded.indices, mapped)
    return _map_distinct(texts, key=key, prefix=prefix, table=table)


def pseudonym_of(value: str, *, key: bytes, prefix: str) -> str:
    """The pseudonym of one value (tracing and tests): the reference implementation."""
    mac = hmac.new(key, value.encode(), hashlib.sha256).digest()
    return prefix + _b32(mac[:DIGEST_BYTES])
