"""Errors raised by the audit package."""


class AuditError(Exception):
    """Root of every audit-package error."""


class ProofInvalid(AuditError):
    """An inclusion or consistency proof does not verify."""


class ConsistencyError(AuditError):
    """Two views of the log cannot both be true (a fork, a rollback or a truncation)."""


class CheckpointInvalid(AuditError):
    """A checkpoint is malformed, or its signature does not verify."""


class AuditUnavailable(AuditError):
    """The log could not record an event in time: the request must fail closed."""
