"""Inclusion and consistency proofs served from the leaf hashes stored with each event.

A proof needs the roots of a few subtrees. Roots of complete, aligned subtrees never
change in an append-only log, so those of 256 leaves or more are memoized: after the
first proofs, a new one costs a few cached lookups plus at most a couple of reads of
256 leaf hashes, instead of rereading the whole log.
"""

from __future__ import annotations

import threading

from audit import (
    EMPTY_ROOT,
    AuditError,
    consistency_proof_ranges,
    inclusion_proof_ranges,
    node_hash,
    root_from_leaf_hashes,
)
from gateway.auditing.log import AuditLog

TILE = 256
_MAX_CACHED = 1 << 20


def _split(size: int) -> int:
    return 1 << ((size - 1).bit_length() - 1)


class ProofSource:
    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit
        self._cache: dict[tuple[int, int], bytes] = {}
        self._lock = threading.Lock()

    def range_root(self, start: int, end: int) -> bytes:
        """RFC 6962 MTH of leaves [start, end), which must all be committed."""
        size = end - start
        if size <= 0:
            return EMPTY_ROOT
        cacheable = size >= TILE and size & (size - 1) == 0 and start % size == 0
        if cacheable:
            cached = self._cache.get((start, end))
            if cached is not None:
                return cached
        if size <= TILE:
            leaves = self._audit.leaf_hashes(start, end)
            if len(leaves) != size or any(len(leaf) != 32 for leaf in leaves):
                raise AuditError(f"leaf hashes {start}..{end} are missing or malformed")
            value = root_from_leaf_hashes(leaves)
        else:
            middle = start + _split(size)
            value = node_hash(self.range_root(start, middle), self.range_root(middle, end))
        if cacheable:
            with self._lock:
                if len(self._cache) < _MAX_CACHED:
                    self._cache[(start, end)] = value
        return value

    def inclusion(self, index: int, tree_size: int) -> list[bytes]:
        return [self.range_root(s, e) for s, e in inclusion_proof_ranges(index, tree_size)]

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        return [self.range_root(s, e) for s, e in consistency_proof_ranges(old_size, new_size)]
