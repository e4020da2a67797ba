"""Receipts: proof, checkable offline, that the audit log recorded an event.

A receipt is the event's stored body, its leaf's inclusion proof and the signed
checkpoint the proof leads to. ``verify_receipt`` needs only the receipt and the
log's public key pinned beforehand (``vkey``); it runs the same proof code as the
server (``kiteline_proofs``), and no network.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from kiteline_proofs.checkpoints import Checkpoint, Verifier
from kiteline_proofs.errors import AuditError
from kiteline_proofs.merkle import leaf_hash, verify_inclusion

from kiteline_client.errors import KitelineError

DEFAULT_ORIGIN = "kiteline/audit"


class ReceiptInvalid(KitelineError):
    """A receipt does not prove what it claims: a forged, edited or unsigned record."""


@dataclass(frozen=True)
class Receipt:
    seq: int
    tree_size: int
    proof: tuple[bytes, ...]
    checkpoint: str  # the signed note
    body: str  # the event, exactly as the log hashed it

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Receipt:
        try:
            return cls(
                seq=int(data["seq"]),
                tree_size=int(data["tree_size"]),
                proof=tuple(base64.b64decode(node, validate=True) for node in data["proof"]),
                checkpoint=str(data["checkpoint"]),
                body=str(data["body"]),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ReceiptInvalid(f"not a receipt: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "tree_size": self.tree_size,
            "proof": [base64.b64encode(node).decode() for node in self.proof],
            "checkpoint": self.checkpoint,
            "body": self.body,
        }

    @property
    def event(self) -> dict[str, Any]:
        """The recorded event (unchecked until ``verify_receipt`` passes)."""
        event: dict[str, Any] = json.loads(self.body)
        return event


def verify_receipt(receipt: Receipt, vkey: str, *, origin: str = DEFAULT_ORIGIN) -> Checkpoint:
    """Check ``receipt`` against the pinned public key ``vkey``; return its checkpoint.

    Raises ``ReceiptInvalid`` when the checkpoint is not signed by that key for that
    log, when the proof does not lead from the event to the signed root, or when the
    event's own sequence number is not the one the proof places it at."""
    try:
        checkpoint = Verifier.from_vkey(vkey).verify(receipt.checkpoint, origin=origin)
        if checkpoint.tree_size != receipt.tree_size:
            raise ReceiptInvalid(
                f"the receipt claims a tree of {receipt.tree_size} events, "
                f"its checkpoint signs {checkpoint.tree_size}"
            )
        verify_inclusion(
            leaf_hash(receipt.body.encode()),
            receipt.seq - 1,
            checkpoint.tree_size,
            receipt.proof,
            checkpoint.root_hash,
        )
        recorded = receipt.event.get("seq")
    except AuditError as exc:
        raise ReceiptInvalid(str(exc)) from exc
    except ValueError as exc:
        raise ReceiptInvalid(f"the event is not JSON: {exc}") from exc
    if recorded != receipt.seq:
        raise ReceiptInvalid(f"the event records seq {recorded}, the receipt {receipt.seq}")
    return checkpoint


__all__ = ["DEFAULT_ORIGIN", "Receipt", "ReceiptInvalid", "verify_receipt"]
