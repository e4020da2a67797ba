"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification.

The audit log is a sequence of leaves. A signed checkpoint commits to the root of
the first `tree_size` leaves; an inclusion proof shows that one event is in a
checkpointed tree, and a consistency proof shows that a later checkpoint extends
an earlier one, so nothing was edited, deleted, reordered or truncated.

Everything here works on *leaf hashes* (`leaf_hash(event_bytes)`), never on raw
events: callers store the 32-byte hash beside each record and can build roots and
proofs without rereading event bodies.

Proof generation is split in two so a database-backed log can serve proofs without
loading the whole tree: `inclusion_proof_ranges` / `consistency_proof_ranges` say
which subtrees a proof needs, and `subtree_root` hashes one subtree from a
`LeafHashReader` in bounded memory (or the caller substitutes cached subtree roots).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence

from kiteline_proofs.errors import AuditError, ProofInvalid

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# RFC 6962 domain separation: a leaf can never be mistaken for an interior node.
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

DEFAULT_READ_CHUNK = 1 << 16

LeafHashReader = Callable[[int, int], Sequence[bytes]]
"""Returns the leaf hashes with indices in [start, end), in order."""


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 hash of one leaf: SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


class TreeBuilder:
    """Appends leaf hashes one at a time and gives the current root.

    The state is the tree's compact range: one root per perfect subtree named by a
    set bit of `size`, leftmost (largest) first, so at most 64 hashes whatever the
    size. A verifier can stream millions of events through it, and a writer can
    persist `size` and `frontier` and resume with `from_frontier`.
    """

    __slots__ = ("_size", "_frontier")

    def __init__(self) -> None:
        self._size = 0
        self._frontier: list[bytes] = []

    @classmethod
    def from_frontier(cls, size: int, frontier: Sequence[bytes]) -> TreeBuilder:
        """Resume from a saved `size` and `frontier`."""
        if size < 0:
            raise ValueError(f"tree size must not be negative, got {size}")
        if len(frontier) != size.bit_count():
            raise ValueError(
                f"a tree of size {size} has {size.bit_count()} frontier hashes, got {len(frontier)}"
            )
        for position, value in enumerate(frontier):
            _require_hash_size(f"frontier hash {position}", value)
        builder = cls()
        builder._size = size
        builder._frontier = list(frontier)
        return builder

    @property
    def size(self) -> int:
        return self._size

    @property
    def frontier(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees that make up the tree, leftmost first."""
        return tuple(self._frontier)

    def append(self, hashed_leaf: bytes) -> None:
        """Append one leaf hash (see `leaf_hash`)."""
        self.extend((hashed_leaf,))

    def append_leaf(self, data: bytes) -> None:
        """Hash one raw leaf and append it."""
        self.extend((leaf_hash(data),))

    def extend(self, hashed_leaves: Iterable[bytes]) -> None:
        """Append leaf hashes in order.

        The new leaves go in a whole tree level at a time: each level's new nodes are
        hashed in one pass from the level below (with the old subtree of that height,
        when the old size left one waiting for its right sibling), and an odd one out
        stays in the frontier. The verifier's hot path: one hash per interior node and
        no per-leaf bookkeeping."""
        level = list(hashed_leaves)
        if not level:
            return
        wrong = next((i for i, value in enumerate(level) if len(value) != HASH_SIZE), None)
        if wrong is not None:
            # The leaves before the wrong one are appended, as one by one they would be.
            self.extend(level[:wrong])
            raise ValueError(
                f"leaf hash {self._size} is {len(level[wrong])} bytes, expected {HASH_SIZE}"
            )
        size = self._size
        new_size = size + len(level)
        # The old frontier by height: the subtree of height h exists when bit h is set.
        old = dict(
            zip(
                [h for h in reversed(range(size.bit_length())) if size >> h & 1],
                self._frontier,
                strict=True,
            )
        )
        kept: list[bytes] = []
        sha256 = hashlib.sha256
        node_prefix = _NODE_PREFIX
        for height in range(new_size.bit_length()):
            if size >> height & 1:
                level.insert(0, old[height])
            if len(level) & 1:
                kept.append(level.pop())
            # An even count is left: pair each left child with its right sibling.
            level = [
                sha256(node_prefix + left + right).digest()
                for left, right in zip(level[0::2], level[1::2], strict=True)
            ]
        kept.reverse()
        self._frontier = kept
        self._size = new_size

    def root(self) -> bytes:
        """The RFC 6962 root of every leaf appended so far."""
        if not self._frontier:
            return EMPTY_ROOT
        # Smaller subtrees hang off the right edge of larger ones.
        pending = reversed(self._frontier)
        root = next(pending)
        for left in pending:
            root = node_hash(left, root)
        return root


def root_from_leaf_hashes(hashed_leaves: Iterable[bytes]) -> bytes:
    """The RFC 6962 root of a tree with these leaf hashes, in O(n) time, O(log n) memory."""
    builder = TreeBuilder()
    builder.extend(hashed_leaves)
    return builder.root()


def subtree_root(
    read_leaf_hashes: LeafHashReader,
    start: int,
    end: int,
    *,
    chunk_size: int = DEFAULT_READ_CHUNK,
) -> bytes:
    """The root of the tree made of leaves [start, end), read in chunks of `chunk_size`."""
    if not 0 <= start <= end:
        raise ValueError(f"invalid leaf range [{start}, {end})")
    if chunk_size < 1:
        raise ValueError(f"chunk size must be positive, got {chunk_size}")
    builder = TreeBuilder()
    for chunk_start in range(start, end, chunk_size):
        chunk_end = min(chunk_start + chunk_size, end)
        chunk = read_leaf_hashes(chunk_start, chunk_end)
        if len(chunk) != chunk_end - chunk_start:
            # A short read would silently hash a different tree; that must not pass.
            raise AuditError(
                f"leaf hash reader returned {len(chunk)} hashes "
                f"for range [{chunk_start}, {chunk_end})"
            )
        builder.extend(chunk)
    return builder.root()


def _split_point(size: int) -> int:
    """The largest power of two strictly below `size` (RFC 6962's k), for size >= 2."""
    return 1 << ((size - 1).bit_length() - 1)


def inclusion_proof_ranges(index: int, tree_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose subtree roots form the inclusion proof, in proof order."""
    if not 0 <= index < tree_size:
        raise ValueError(f"leaf index {index} is outside a tree of size {tree_size}")
    siblings: list[tuple[int, int]] = []
    low, high = 0, tree_size
    while high - low > 1:
        middle = low + _split_point(high - low)
        if index < middle:
            siblings.append((middle, high))
            high = middle
        else:
            siblings.append((low, middle))
            low = middle
    # Found top-down; a proof lists them from the leaf up.
    siblings.reverse()
    return siblings


def consistency_proof_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose subtree roots form the consistency proof, in proof order."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"cannot prove consistency from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    nodes: list[tuple[int, int]] = []
    low, high = 0, new_size
    # While the old tree is the leftmost subtree of the current one, the verifier
    # already knows its root (it is the old root), so the proof may omit it.
    old_root_known = True
    while old_size - low != high - low:
        middle = low + _split_point(high - low)
        if old_size <= middle:
            nodes.append((middle, high))
            high = middle
        else:
            nodes.append((low, middle))
            low = middle
            old_root_known = False
    if not old_root_known:
        nodes.append((low, high))
    nodes.reverse()
    return nodes


def _reader_over(hashed_leaves: Sequence[bytes]) -> LeafHashReader:
    def read(start: int, end: int) -> Sequence[bytes]:
        return hashed_leaves[start:end]

    return read


def _require_available(hashed_leaves: Sequence[bytes], tree_size: int) -> None:
    if tree_size > len(hashed_leaves):
        raise ValueError(f"tree size {tree_size} exceeds the {len(hashed_leaves)} leaves given")


def inclusion_proof(hashed_leaves: Sequence[bytes], index: int, tree_size: int) -> list[bytes]:
    """The RFC 6962 inclusion proof for leaf `index` in the tree of the first `tree_size` leaves."""
    _require_available(hashed_leaves, tree_size)
    return inclusion_proof_from_reader(_reader_over(hashed_leaves), index, tree_size)


def consistency_proof(hashed_leaves: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """The RFC 6962 consistency proof from the tree of size `old_size` to size `new_size`."""
    _require_available(hashed_leaves, new_size)
    return consistency_proof_from_reader(_reader_over(hashed_leaves), old_size, new_size)


def inclusion_proof_from_reader(
    read_leaf_hashes: LeafHashReader, index: int, tree_size: int
) -> list[bytes]:
    """Like `inclusion_proof`, reading leaf hashes by range (for example from a database)."""
    return _subtree_roots(read_leaf_hashes, inclusion_proof_ranges(index, tree_size))


def consistency_proof_from_reader(
    read_leaf_hashes: LeafHashReader, old_size: int, new_size: int
) -> list[bytes]:
    """Like `consistency_proof`, reading leaf hashes by range (for example from a database)."""
    return _subtree_roots(read_leaf_hashes, consistency_proof_ranges(old_size, new_size))


def _subtree_roots(
    read_leaf_hashes: LeafHashReader, ranges: Iterable[tuple[int, int]]
) -> list[bytes]:
    return [subtree_root(read_leaf_hashes, start, end) for start, end in ranges]


def _require_hash_size(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ValueError(f"{what} is {len(value)} bytes, expected {HASH_SIZE}")


def _checked_hash(what: str, value: bytes) -> bytes:
    if len(value) != HASH_SIZE:
        raise ProofInvalid(f"{what} is {len(value)} bytes, expected {HASH_SIZE}")
    return bytes(value)


def _checked_proof(proof: Sequence[bytes]) -> list[bytes]:
    return [_checked_hash(f"proof node {position}", node) for position, node in enumerate(proof)]


def _sides(
    fn: int, sn: int, nodes: Sequence[bytes], proof: str, tree: str
) -> Iterator[tuple[bytes, bool]]:
    """Each node of a proof with whether it is the left sibling on the way up (RFC 9162).

    ``fn`` walks up from the node the proof starts at, ``sn`` up from the tree's last
    leaf: where they meet on the right edge of the tree, a missing right sibling means
    "promote, do not hash". The proof must end exactly at the root: ``ProofInvalid``
    names ``proof`` and ``tree`` when it is longer or shorter than that."""
    for node in nodes:
        if sn == 0:
            raise ProofInvalid(f"{proof} is longer than {tree} is tall")
        on_left = bool(fn & 1) or fn == sn
        yield node, on_left
        if on_left:
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofInvalid(f"{proof} is shorter than {tree} is tall")


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise `ProofInvalid` unless `proof` shows leaf `index` of a `tree_size` tree is `leaf_hash`.

    RFC 9162 section 2.1.3.2. The root alone does not commit to the tree size (a
    proof for leaf 0 of 8 leaves also fits leaf 0 of 7 leaves whose last leaf hash is
    an interior node), so check the root against a checkpoint that signs both.
    """
    leaf = _checked_hash("leaf hash", leaf_hash)
    expected_root = _checked_hash("root", root)
    nodes = _checked_proof(proof)
    if not 0 <= index < tree_size:
        raise ProofInvalid(f"leaf index {index} is outside a tree of size {tree_size}")
    expected_length = len(inclusion_proof_ranges(index, tree_size))
    if len(nodes) != expected_length:
        raise ProofInvalid(
            f"inclusion proof has {len(nodes)} nodes; leaf {index} of a tree of size "
            f"{tree_size} needs {expected_length}"
        )

    computed = leaf
    for node, on_left in _sides(index, tree_size - 1, nodes, "inclusion proof", "the tree"):
        computed = node_hash(node, computed) if on_left else node_hash(computed, node)
    if computed != expected_root:
        raise ProofInvalid(
            f"inclusion proof for leaf {index} does not lead to the given root "
            f"of a tree of size {tree_size}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise `ProofInvalid` unless `proof` shows the `old_size` tree is a prefix of the new one.

    RFC 9162 section 2.1.4.2, plus the trivial cases it leaves to the caller: equal
    sizes need equal roots and an empty proof; an empty old tree needs the empty
    root (SHA-256 of nothing) and an empty proof.
    """
    old = _checked_hash("old root", old_root)
    new = _checked_hash("new root", new_root)
    nodes = _checked_proof(proof)
    if not 0 <= old_size <= new_size:
        raise ProofInvalid(f"cannot prove consistency from size {old_size} to size {new_size}")
    if old_size == new_size:
        if nodes:
            raise ProofInvalid("a consistency proof between equal sizes must be empty")
        if old != new:
            raise ProofInvalid(f"two trees of size {old_size} have different roots")
        return
    if old_size == 0:
        if nodes:
            raise ProofInvalid("a consistency proof from the empty tree must be empty")
        if old != EMPTY_ROOT:
            raise ProofInvalid("the root of the empty tree must be SHA-256 of the empty string")
        return
    expected_length = len(consistency_proof_ranges(old_size, new_size))
    if len(nodes) != expected_length:
        raise ProofInvalid(
            f"consistency proof has {len(nodes)} nodes; sizes {old_size} to {new_size} "
            f"need {expected_length}"
        )

    # A power-of-two old tree is a whole subtree of the new one: the proof omits its
    # root because the verifier already has it.
    if old_size & (old_size - 1) == 0:
        nodes.insert(0, old)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old_computed = new_computed = nodes[0]
    for node, on_left in _sides(fn, sn, nodes[1:], "consistency proof", "the new tree"):
        if on_left:
            old_computed = node_hash(node, old_computed)
            new_computed = node_hash(node, new_computed)
        else:
            new_computed = node_hash(new_computed, node)
    if old_computed != old:
        raise ProofInvalid(f"consistency proof does not lead to the old root (size {old_size})")
    if new_computed != new:
        raise ProofInvalid(f"consistency proof does not lead to the new root (size {new_size})")


__all__ = [
    "HASH_SIZE",
    "EMPTY_ROOT",
    "DEFAULT_READ_CHUNK",
    "LeafHashReader",
    "leaf_hash",
    "node_hash",
    "TreeBuilder",
    "root_from_leaf_hashes",
    "subtree_root",
    "inclusion_proof_ranges",
    "consistency_proof_ranges",
    "inclusion_proof",
    "consistency_proof",
    "inclusion_proof_from_reader",
    "consistency_proof_from_reader",
    "verify_inclusion",
    "verify_consistency",
]
