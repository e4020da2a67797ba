"""An event's inclusion proof, checked against the latest signed checkpoint.

The check recomputes the leaf from the stored body (not from the stored leaf hash), so
a body edited in the database no longer leads to the signed root; the checkpoint is
read back through the log's public key, so an edited checkpoint is refused too.
"""

from __future__ import annotations

from dataclasses import dataclass

from audit.errors import AuditError
from audit.merkle import leaf_hash, verify_inclusion
from gateway.audit_trail import AuditTrail


@dataclass(frozen=True, slots=True)
class ProofCheck:
    seq: int
    verified: bool
    tree_size: int | None
    root_hex: str | None
    proof_nodes: int
    checkpoint_at: str | None
    problem: str | None


def check_event(trail: AuditTrail, seq: int) -> ProofCheck:
    tree_size: int | None = None
    root_hex: str | None = None
    nodes = 0
    moment: str | None = None
    try:
        stored = trail.checkpointer.covering(seq)
        checkpoint = trail.checkpointer.verifier.verify(
            stored.note, origin=trail.checkpointer.origin
        )
        tree_size, root_hex = checkpoint.tree_size, checkpoint.root_hash.hex()
        moment = stored.created_at.isoformat(timespec="seconds")
        body = trail.audit.body(seq)
        if body is None:
            raise AuditError(f"event {seq} is missing from the log")
        proof = trail.proofs.inclusion(seq - 1, tree_size)
        nodes = len(proof)
        verify_inclusion(leaf_hash(body.encode()), seq - 1, tree_size, proof, checkpoint.root_hash)
    except AuditError as exc:
        return ProofCheck(seq, False, tree_size, root_hex, nodes, moment, str(exc))
    return ProofCheck(seq, True, tree_size, root_hex, nodes, moment, None)
