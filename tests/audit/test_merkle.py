"""RFC 6962 Merkle trees: published vectors, corruption probes and universal properties."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import ParamSpec

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from audit.errors import AuditError, ProofInvalid
from audit.merkle import (
    EMPTY_ROOT,
    TreeBuilder,
    consistency_proof,
    consistency_proof_ranges,
    inclusion_proof,
    inclusion_proof_from_reader,
    inclusion_proof_ranges,
    leaf_hash,
    root_from_leaf_hashes,
    subtree_root,
    verify_consistency,
    verify_inclusion,
)

# Certificate Transparency reference vectors, as published in
# transparency-dev/merkle testonly/constants.go and proof/verify_test.go.
CT_LEAVES = [
    bytes.fromhex(text)
    for text in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    bytes.fromhex(text)
    for text in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
# Level 0 of the published node hashes: the RFC 6962 leaf hashes of CT_LEAVES.
CT_LEAF_HASHES = [
    bytes.fromhex(text)
    for text in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    )
]
H_01 = bytes.fromhex("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")
H_23 = bytes.fromhex("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e")
H_45 = bytes.fromhex("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a")
H_67 = bytes.fromhex("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0")
H_0123 = bytes.fromhex("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")
H_4567 = bytes.fromhex("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")

# (leaf index, tree size, proof); the Go source numbers leaves from 1.
CT_INCLUSION_PROOFS = [
    (0, 8, [CT_LEAF_HASHES[1], H_23, H_4567]),
    (5, 8, [CT_LEAF_HASHES[4], H_67, H_0123]),
    (2, 3, [H_01]),
    (1, 5, [CT_LEAF_HASHES[0], H_23, CT_LEAF_HASHES[4]]),
]
CT_CONSISTENCY_PROOFS = [
    (1, 1, []),
    (1, 8, [CT_LEAF_HASHES[1], H_23, H_4567]),
    (6, 8, [H_45, H_67, H_0123]),
    (2, 5, [H_23, CT_LEAF_HASHES[4]]),
    (6, 7, [H_45, CT_LEAF_HASHES[6], H_0123]),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


# A second implementation, written straight from the recursive definitions in
# RFC 6962 section 2.1, to check the iterative library code against.
def _split(size: int) -> int:
    split = 1
    while split * 2 < size:
        split *= 2
    return split


def reference_root(hashes: Sequence[bytes]) -> bytes:
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return hashlib.sha256(
        b"\x01" + reference_root(hashes[:k]) + reference_root(hashes[k:])
    ).digest()


def reference_path(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    if len(hashes) == 1:
        return []
    k = _split(len(hashes))
    if index < k:
        return reference_path(index, hashes[:k]) + [reference_root(hashes[k:])]
    return reference_path(index - k, hashes[k:]) + [reference_root(hashes[:k])]


def reference_subproof(old_size: int, hashes: Sequence[bytes], complete: bool) -> list[bytes]:
    if old_size == len(hashes):
        return [] if complete else [reference_root(hashes)]
    k = _split(len(hashes))
    if old_size <= k:
        return reference_subproof(old_size, hashes[:k], complete) + [reference_root(hashes[k:])]
    return reference_subproof(old_size - k, hashes[k:], False) + [reference_root(hashes[:k])]


def _flip_bit(node: bytes, bit: int) -> bytes:
    return bytes([node[0] ^ (1 << bit)]) + node[1:]


P = ParamSpec("P")


def _rejected(verify: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> bool:
    """Whether the verifier refuses the proof (it raises rather than return False)."""
    try:
        verify(*args, **kwargs)
    except ProofInvalid:
        return True
    return False


# An RFC 6962 root does not commit to the tree size on its own: if a probe with a
# tree size one off makes the verifier hash the same nodes in the same order,
# acceptance is unavoidable (checkpoints sign size and root together for this
# reason). A "shape" names that hashing order, so such probes are judged exactly;
# every other probe must be rejected outright.
def _inclusion_shape(index: int, size: int) -> tuple[bool, ...] | None:
    if not 0 <= index < size:
        return None
    return tuple(end <= index for _, end in inclusion_proof_ranges(index, size))


def _consistency_shape(old_size: int, new_size: int) -> tuple[bool, ...] | None:
    if not 0 < old_size < new_size:
        return None
    whole_subtree = old_size & (old_size - 1) == 0
    sides = (end <= old_size for _, end in consistency_proof_ranges(old_size, new_size))
    return (whole_subtree, *sides)


def _proof_edits(proof: list[bytes], root: bytes, extra: bytes) -> list[tuple[str, list[bytes]]]:
    edits = [
        ("trailing garbage", [*proof, b""]),
        ("trailing root", [*proof, root]),
        ("trailing node", [*proof, extra]),
        ("preceding garbage", [b"", *proof]),
        ("preceding root", [root, *proof]),
        ("preceding node", [extra, *proof]),
    ]
    if proof:
        edits += [
            ("empty proof", []),
            ("truncated proof", proof[:-1]),
            ("first node dropped", proof[1:]),
            ("preceding proof[0]", [proof[0], *proof]),
        ]
    if len(proof) > 1:
        edits.append(("inserted node", [proof[0], extra, *proof[1:]]))
    for position in range(len(proof)):
        for bit in (0, 3, 7):
            flipped = list(proof)
            flipped[position] = _flip_bit(proof[position], bit)
            edits.append((f"proof[{position}] bit {bit} flipped", flipped))
    return edits


# A verifier in one calling form: the two numbers it checks a proof at (leaf index and
# tree size, or old and new tree size), the proof, and the two hashes it checks it
# against (leaf hash and root, or old and new root).
Verify = Callable[[int, int, list[bytes], bytes, bytes], object]


def _check_probes(
    verify: Verify,
    names: tuple[str, str],
    shape: Callable[[int, int], object],
    numbers: tuple[int, int],
    proof: list[bytes],
    hashes: tuple[bytes, bytes],
    wrong_hashes: list[tuple[str, bytes, bytes]],
) -> None:
    """The valid proof verifies; every corruption of it is rejected (but for a tree size
    one off that hashes the same nodes in the same order, see ``_inclusion_shape``)."""
    (first, second), (first_name, second_name), (hash_1, hash_2) = numbers, names, hashes
    verify(first, second, proof, hash_1, hash_2)

    always_wrong = [
        (f"{first_name} - 1", first - 1, second),
        (f"{first_name} + 1", first + 1, second),
        (f"{first_name} ^ 2", first ^ 2, second),
        (f"{second_name} * 2", first, second * 2),
        (f"{second_name} // 2", first, second // 2),
    ]
    for description, other_first, other_second in always_wrong:
        assert _rejected(verify, other_first, other_second, proof, hash_1, hash_2), description
    for description, other_second in [
        (f"{second_name} - 1", second - 1),
        (f"{second_name} + 1", second + 1),
    ]:
        rejected = _rejected(verify, first, other_second, proof, hash_1, hash_2)
        unavoidable = shape(first, other_second) == shape(first, second)
        assert rejected != unavoidable, description

    for description, edited in _proof_edits(proof, hash_2, SOME_HASH):
        assert _rejected(verify, first, second, edited, hash_1, hash_2), description
    for description, other_1, other_2 in wrong_hashes:
        assert _rejected(verify, first, second, proof, other_1, other_2), description


def check_inclusion_probes(
    hashed_leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> None:
    _check_probes(
        lambda index, size, proof, leaf, root: verify_inclusion(leaf, index, size, proof, root),
        ("index", "size"),
        _inclusion_shape,
        (index, size),
        proof,
        (hashed_leaf, root),
        [
            ("wrong leaf", leaf_hash(b"wrong leaf"), root),
            ("short leaf", b"WrongLeaf", root),
            ("root as leaf", root, root) if size > 1 else ("some leaf", SOME_HASH, root),
            ("empty-tree root", hashed_leaf, EMPTY_ROOT),
            ("other root", hashed_leaf, SOME_HASH),
            ("short root", hashed_leaf, root[:-1]),
        ],
    )


def check_consistency_probes(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> None:
    _check_probes(
        lambda old, new, proof, old_root, new_root: verify_consistency(
            old, new, old_root, new_root, proof
        ),
        ("old size", "new size"),
        _consistency_shape,
        (old_size, new_size),
        proof,
        (old_root, new_root),
        [
            ("swapped roots", new_root, old_root),
            ("old root twice", old_root, old_root),
            ("new root twice", new_root, new_root),
            ("other old root", SOME_HASH, new_root),
            ("other new root", old_root, SOME_HASH),
            ("short old root", old_root[:-1], new_root),
            ("short new root", old_root, new_root[:-1]),
        ],
    )


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest() == CT_ROOTS[0]
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    assert TreeBuilder().root() == EMPTY_ROOT


@pytest.mark.parametrize("position", range(len(CT_LEAVES)))
def test_leaf_hash_matches_published_vector(position: int) -> None:
    assert leaf_hash(CT_LEAVES[position]) == CT_LEAF_HASHES[position]


@pytest.mark.parametrize("size", range(len(CT_ROOTS)))
def test_root_matches_published_vector(size: int) -> None:
    hashes = [leaf_hash(data) for data in CT_LEAVES[:size]]
    assert root_from_leaf_hashes(hashes) == CT_ROOTS[size]
    assert reference_root(hashes) == CT_ROOTS[size]


def test_builder_matches_published_roots_at_every_size() -> None:
    builder = TreeBuilder()
    assert builder.root() == CT_ROOTS[0]
    for size, data in enumerate(CT_LEAVES, start=1):
        builder.append_leaf(data)
        assert builder.size == size
        assert builder.root() == CT_ROOTS[size]


def test_builder_frontier_matches_published_compact_ranges() -> None:
    leaves = CT_LEAF_HASHES
    expected = [
        (),
        (leaves[0],),
        (H_01,),
        (H_01, leaves[2]),
        (H_0123,),
        (H_0123, leaves[4]),
        (H_0123, H_45),
        (H_0123, H_45, leaves[6]),
        (CT_ROOTS[8],),
    ]
    builder = TreeBuilder()
    assert builder.frontier == expected[0]
    for size in range(1, 9):
        builder.append(leaves[size - 1])
        assert builder.frontier == expected[size]


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION_PROOFS)
def test_inclusion_proof_matches_published_vector(
    index: int, size: int, proof: list[bytes]
) -> None:
    assert inclusion_proof(CT_LEAF_HASHES, index, size) == proof
    verify_inclusion(CT_LEAF_HASHES[index], index, size, proof, CT_ROOTS[size])


@pytest.mark.parametrize(("old_size", "new_size", "proof"), CT_CONSISTENCY_PROOFS)
def test_consistency_proof_matches_published_vector(
    old_size: int, new_size: int, proof: list[bytes]
) -> None:
    assert consistency_proof(CT_LEAF_HASHES, old_size, new_size) == proof
    verify_consistency(old_size, new_size, CT_ROOTS[old_size], CT_ROOTS[new_size], proof)


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION_PROOFS)
def test_corrupted_published_inclusion_proofs_are_rejected(
    index: int, size: int, proof: list[bytes]
) -> None:
    check_inclusion_probes(CT_LEAF_HASHES[index], index, size, proof, CT_ROOTS[size])


@pytest.mark.parametrize(("old_size", "new_size", "proof"), CT_CONSISTENCY_PROOFS[1:])
def test_corrupted_published_consistency_proofs_are_rejected(
    old_size: int, new_size: int, proof: list[bytes]
) -> None:
    old_root, new_root = CT_ROOTS[old_size], CT_ROOTS[new_size]
    check_consistency_probes(old_size, new_size, old_root, new_root, proof)


def test_a_root_alone_does_not_commit_to_the_tree_size() -> None:
    """Why a checkpoint must sign the size with the root: the same three nodes prove
    leaf 0 of the 8-leaf tree and leaf 0 of a 7-leaf tree whose last leaf hash is
    the interior node H(6, 7); the verifier cannot tell the two apart."""
    proof = [CT_LEAF_HASHES[1], H_23, H_4567]
    verify_inclusion(CT_LEAF_HASHES[0], 0, 8, proof, CT_ROOTS[8])
    verify_inclusion(CT_LEAF_HASHES[0], 0, 7, proof, CT_ROOTS[8])
    assert root_from_leaf_hashes([*CT_LEAF_HASHES[:6], H_67]) == CT_ROOTS[8]
    with pytest.raises(ProofInvalid):
        verify_inclusion(CT_LEAF_HASHES[0], 0, 9, proof, CT_ROOTS[8])


@pytest.mark.parametrize(
    ("index", "size"), [(0, 0), (1, 0), (1, 1), (2, 1), (-1, 1), (0, -1), (5, 5)]
)
def test_inclusion_outside_the_tree_is_rejected(index: int, size: int) -> None:
    for leaf, root in [(SOME_HASH, SOME_HASH), (EMPTY_ROOT, EMPTY_ROOT), (SOME_HASH, EMPTY_ROOT)]:
        with pytest.raises(ProofInvalid, match="outside"):
            verify_inclusion(leaf, index, size, [], root)


def test_single_leaf_tree_needs_leaf_equal_to_root() -> None:
    hashed = leaf_hash(b"data")
    verify_inclusion(hashed, 0, 1, [], hashed)
    for leaf, root in [(hashed, b""), (b"", hashed), (b"", b""), (hashed, SOME_HASH)]:
        with pytest.raises(ProofInvalid):
            verify_inclusion(leaf, 0, 1, [], root)
    with pytest.raises(ProofInvalid):
        verify_inclusion(hashed, 0, 1, [SOME_HASH], hashed)


ROOT_A = leaf_hash(b"a")
ROOT_B = leaf_hash(b"b")


@pytest.mark.parametrize(
    ("old_size", "new_size", "old_root", "new_root", "proof", "valid"),
    [
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True),
        (0, 1, EMPTY_ROOT, ROOT_B, [], True),
        (0, 5, EMPTY_ROOT, CT_ROOTS[5], [], True),
        (1, 1, ROOT_A, ROOT_A, [], True),
        (0, 0, EMPTY_ROOT, ROOT_B, [], False),
        (1, 1, ROOT_A, ROOT_B, [], False),
        (0, 1, ROOT_A, ROOT_B, [], False),  # stricter than RFC 9162: empty means H("")
        (1, 0, ROOT_A, ROOT_B, [], False),
        (2, 1, ROOT_A, ROOT_B, [], False),
        (-1, 1, ROOT_A, ROOT_B, [], False),
        (1, 2, ROOT_A, ROOT_B, [], False),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (1, 1, b"short", b"short", [], False),
    ],
)
def test_trivial_consistency_cases(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes], valid: bool
) -> None:
    if valid:
        verify_consistency(old_size, new_size, old_root, new_root, proof)
    else:
        with pytest.raises(ProofInvalid):
            verify_consistency(old_size, new_size, old_root, new_root, proof)


def test_proof_errors_say_what_is_wrong() -> None:
    proof = [CT_LEAF_HASHES[1], H_23, H_4567]
    with pytest.raises(ProofInvalid, match="has 2 nodes.*needs 3"):
        verify_inclusion(CT_LEAF_HASHES[0], 0, 8, proof[:2], CT_ROOTS[8])
    with pytest.raises(ProofInvalid, match="proof node 1 is 0 bytes"):
        verify_inclusion(CT_LEAF_HASHES[0], 0, 8, [proof[0], b"", proof[2]], CT_ROOTS[8])
    with pytest.raises(ProofInvalid, match="does not lead to the given root"):
        verify_inclusion(CT_LEAF_HASHES[0], 0, 8, proof, CT_ROOTS[7])
    with pytest.raises(ProofInvalid, match="old root"):
        verify_consistency(6, 8, CT_ROOTS[5], CT_ROOTS[8], [H_45, H_67, H_0123])
    with pytest.raises(ProofInvalid, match="new root"):
        verify_consistency(6, 8, CT_ROOTS[6], CT_ROOTS[7], [H_45, H_67, H_0123])


def test_subtree_root_reads_in_chunks() -> None:
    hashes = [leaf_hash(bytes([n])) for n in range(23)]
    reads: list[tuple[int, int]] = []

    def read(start: int, end: int) -> Sequence[bytes]:
        reads.append((start, end))
        return hashes[start:end]

    assert subtree_root(read, 3, 20, chunk_size=5) == reference_root(hashes[3:20])
    assert reads == [(3, 8), (8, 13), (13, 18), (18, 20)]
    assert subtree_root(read, 7, 7) == EMPTY_ROOT


def test_subtree_root_refuses_a_short_read() -> None:
    hashes = [leaf_hash(bytes([n])) for n in range(10)]
    with pytest.raises(AuditError, match="returned 9 hashes"):
        subtree_root(lambda start, end: hashes[start : end - 1], 0, 10)


def test_proofs_from_a_reader_match_proofs_from_a_list() -> None:
    hashes = [leaf_hash(n.to_bytes(2, "big")) for n in range(300)]

    def read(start: int, end: int) -> Sequence[bytes]:
        return hashes[start:end]

    for index in (0, 1, 150, 255, 256, 299):
        assert inclusion_proof_from_reader(read, index, 300) == inclusion_proof(hashes, index, 300)


def test_builder_rejects_a_hash_of_the_wrong_size_and_keeps_its_state() -> None:
    builder = TreeBuilder()
    good = [leaf_hash(b"1"), leaf_hash(b"2")]
    with pytest.raises(ValueError, match="leaf hash 2 is 31 bytes"):
        builder.extend([*good, b"x" * 31])
    assert builder.size == 2
    assert builder.root() == reference_root(good)


@pytest.mark.parametrize(("size", "frontier_length"), [(0, 1), (1, 0), (3, 1), (8, 2), (-1, 0)])
def test_builder_refuses_a_frontier_that_does_not_fit_its_size(
    size: int, frontier_length: int
) -> None:
    with pytest.raises(ValueError):
        TreeBuilder.from_frontier(size, [SOME_HASH] * frontier_length)


def test_proof_generation_refuses_impossible_requests() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(CT_LEAF_HASHES, 8, 8)
    with pytest.raises(ValueError):
        inclusion_proof(CT_LEAF_HASHES, 0, 9)
    with pytest.raises(ValueError):
        consistency_proof(CT_LEAF_HASHES, 5, 4)
    with pytest.raises(ValueError):
        consistency_proof(CT_LEAF_HASHES, 2, 9)


SMALL_TREE = [leaf_hash(n.to_bytes(1, "big")) for n in range(17)]


@pytest.mark.parametrize("size", range(1, len(SMALL_TREE) + 1))
def test_every_proof_in_small_trees_resists_corruption(size: int) -> None:
    hashes = SMALL_TREE[:size]
    for index in range(size):
        proof = inclusion_proof(hashes, index, size)
        check_inclusion_probes(hashes[index], index, size, proof, reference_root(hashes))
    for old_size in range(1, size):
        proof = consistency_proof(hashes, old_size, size)
        old_root = reference_root(hashes[:old_size])
        check_consistency_probes(old_size, size, old_root, reference_root(hashes), proof)


leaf_lists = st.lists(st.binary(max_size=12), min_size=1, max_size=70)
# Distinct leaves: with repeats, a probe can make a claim that happens to be true
# (leaf 1 of [x, x] is x), which is not a corruption.
distinct_leaf_lists = st.lists(st.binary(max_size=12), min_size=1, max_size=70, unique=True)


@settings(deadline=None)
@given(leaves=distinct_leaf_lists, data=st.data())
def test_generated_inclusion_proofs_verify_and_resist_corruption(
    leaves: list[bytes], data: st.DataObject
) -> None:
    hashes = [leaf_hash(leaf) for leaf in leaves]
    size = data.draw(st.integers(1, len(hashes)), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(hashes, index, size)
    assert proof == reference_path(index, hashes[:size])
    check_inclusion_probes(hashes[index], index, size, proof, reference_root(hashes[:size]))


@settings(deadline=None)
@given(leaves=distinct_leaf_lists, data=st.data())
def test_generated_consistency_proofs_verify_and_resist_corruption(
    leaves: list[bytes], data: st.DataObject
) -> None:
    hashes = [leaf_hash(leaf) for leaf in leaves]
    new_size = data.draw(st.integers(0, len(hashes)), label="new_size")
    old_size = data.draw(st.integers(0, new_size), label="old_size")
    proof = consistency_proof(hashes, old_size, new_size)
    old_root, new_root = reference_root(hashes[:old_size]), reference_root(hashes[:new_size])
    if 0 < old_size < new_size:
        assert proof == reference_subproof(old_size, hashes[:new_size], True)
        check_consistency_probes(old_size, new_size, old_root, new_root, proof)
    else:
        assert proof == []
        verify_consistency(old_size, new_size, old_root, new_root, proof)


@given(leaves=leaf_lists)
def test_builder_root_matches_the_rfc_definition_at_every_size(leaves: list[bytes]) -> None:
    hashes = [leaf_hash(leaf) for leaf in leaves]
    builder = TreeBuilder()
    for size, hashed in enumerate(hashes, start=1):
        builder.append(hashed)
        assert builder.root() == reference_root(hashes[:size])
        assert len(builder.frontier) == size.bit_count()
    assert root_from_leaf_hashes(hashes) == builder.root()


@given(leaves=leaf_lists, data=st.data())
def test_builder_resumed_from_its_frontier_continues_the_same_tree(
    leaves: list[bytes], data: st.DataObject
) -> None:
    hashes = [leaf_hash(leaf) for leaf in leaves]
    cut = data.draw(st.integers(0, len(hashes)), label="cut")
    first = TreeBuilder()
    first.extend(hashes[:cut])
    resumed = TreeBuilder.from_frontier(first.size, first.frontier)
    resumed.extend(hashes[cut:])
    assert resumed.root() == root_from_leaf_hashes(hashes)


def _root_of(leaves: list[bytes]) -> bytes:
    return root_from_leaf_hashes([leaf_hash(leaf) for leaf in leaves])


@given(leaves=leaf_lists, data=st.data())
def test_editing_a_leaf_changes_the_root(leaves: list[bytes], data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(leaves) - 1), label="position")
    replacement = data.draw(st.binary(max_size=12).filter(lambda new: new != leaves[position]))
    edited = [*leaves[:position], replacement, *leaves[position + 1 :]]
    assert _root_of(edited) != _root_of(leaves)


@given(leaves=leaf_lists, data=st.data())
def test_deleting_a_leaf_changes_the_root(leaves: list[bytes], data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(leaves) - 1), label="position")
    assert _root_of(leaves[:position] + leaves[position + 1 :]) != _root_of(leaves)


@given(leaves=leaf_lists, data=st.data())
def test_swapping_two_different_leaves_changes_the_root(
    leaves: list[bytes], data: st.DataObject
) -> None:
    first = data.draw(st.integers(0, len(leaves) - 1), label="first")
    second = data.draw(st.integers(0, len(leaves) - 1), label="second")
    assume(leaves[first] != leaves[second])
    swapped = list(leaves)
    swapped[first], swapped[second] = swapped[second], swapped[first]
    assert _root_of(swapped) != _root_of(leaves)


@pytest.mark.parametrize("cuts", [(1,), (3, 5), (7, 8, 9), (64, 100), (1, 2, 3, 200, 255), (129,)])
def test_extending_a_level_at_a_time_gives_the_same_tree_however_the_leaves_are_split(
    cuts: tuple[int, ...],
) -> None:
    hashes = [leaf_hash(n.to_bytes(2, "big")) for n in range(300)]
    builder = TreeBuilder()
    start = 0
    for cut in (*cuts, len(hashes)):
        builder.extend(hashes[start:cut])
        start = cut
        assert builder.size == cut
        assert builder.root() == reference_root(hashes[:cut])
        resumed = TreeBuilder.from_frontier(builder.size, builder.frontier)
        assert resumed.root() == builder.root()
