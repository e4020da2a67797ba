"""Errors of the tamper-evident log's proofs and checkpoints."""


class AuditError(Exception):
    """Root of every error about the audit log, its proofs and its checkpoints."""


class ProofInvalid(AuditError):
    """An inclusion or consistency proof does not verify."""


class CheckpointInvalid(AuditError):
    """A checkpoint is malformed, or its signature does not verify."""
