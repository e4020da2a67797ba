"""An event's inclusion proof, checked against the latest signed checkpoint; the
checkpoint's agreement with the witness file.

The check recomputes the leaf from the stored body (not from the stored leaf hash), so
a body edited in the database no longer leads to the signed root; the checkpoint is
read back through the log's public key, so an edited checkpoint is refused too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from audit import (
    AuditError,
    ConsistencyError,
    leaf_hash,
    read_notes,
    verify_consistency,
    verify_inclusion,
)
from gateway.auditing.trail import AuditTrail


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


@dataclass(frozen=True, slots=True)
class CheckpointStatus:
    log_size: int
    tree_size: int | None
    root_hex: str | None
    created_at: str | None
    key_id: str
    vkey: str
    witness: str | None
    witnessed_size: int | None
    witness_ok: bool | None
    witness_problem: str | None


def checkpoint_status(trail: AuditTrail, witness_path: Path | None) -> CheckpointStatus:
    """The latest signed checkpoint, and whether the witness file's last checkpoint is
    a prefix of it (a rolled-back or rewritten log is not)."""
    checkpointer = trail.checkpointer
    # As GET /v1/audit/checkpoints/latest: the first one is signed when it is asked for.
    latest = checkpointer.latest() or checkpointer.checkpoint()
    witnessed: int | None = None
    ok: bool | None = None
    problem: str | None = None
    if witness_path is not None:
        try:
            notes = read_notes(witness_path) if witness_path.exists() else []
            if notes:
                seen = checkpointer.verifier.verify(notes[-1], origin=checkpointer.origin)
                witnessed = seen.tree_size
                if latest is None or seen.tree_size > latest.checkpoint.tree_size:
                    raise ConsistencyError(
                        f"the witness saw {seen.tree_size} events, more than the latest "
                        "checkpoint signs: the log was truncated or rolled back"
                    )
                new = latest.checkpoint
                proof = trail.proofs.consistency(seen.tree_size, new.tree_size)
                verify_consistency(
                    seen.tree_size, new.tree_size, seen.root_hash, new.root_hash, proof
                )
                ok = True
        except (AuditError, OSError) as exc:
            ok, problem = False, str(exc)
    return CheckpointStatus(
        log_size=trail.audit.head().size,
        tree_size=latest.checkpoint.tree_size if latest else None,
        root_hex=latest.checkpoint.root_hash.hex() if latest else None,
        created_at=latest.created_at.isoformat(timespec="seconds") if latest else None,
        key_id=checkpointer.verifier.key_id.hex(),
        vkey=checkpointer.verifier.vkey(),
        witness=str(witness_path) if witness_path else None,
        witnessed_size=witnessed,
        witness_ok=ok,
        witness_problem=problem,
    )
