"""Errors raised by the audit package.

The root and the proof and checkpoint errors come from ``kiteline_proofs``, which
holds the proof checks shared with the partners' client.
"""

from kiteline_proofs.errors import AuditError, CheckpointInvalid, ProofInvalid


class ConsistencyError(AuditError):
    """Two views of the log cannot both be true (a fork, a rollback or a truncation)."""


class AuditUnavailable(AuditError):
    """The log could not record an event in time: the request must fail closed."""


__all__ = [
    "AuditError",
    "AuditUnavailable",
    "CheckpointInvalid",
    "ConsistencyError",
    "ProofInvalid",
]
