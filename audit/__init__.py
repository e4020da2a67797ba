"""The audit package's public face: the hash chain, Merkle proofs, checkpoints, alert rules."""

from __future__ import annotations

from audit.alert_rules import Alert, AlertEvaluator, RulesFile, Webhook, parse_rules
from audit.chain import canonical
from audit.checkpoints import Checkpoint, Signer, Verifier, load_signer, save_signer, save_verifier
from audit.errors import (
    AuditError,
    AuditUnavailable,
    CheckpointInvalid,
    ConsistencyError,
    ProofInvalid,
)
from audit.logcheck import (
    CHECKPOINT_MISSING,
    CHECKPOINT_SIGNED,
    FORKED,
    TRUNCATED,
    ExpectedHead,
    LogBatch,
    LogRecord,
    LogReport,
    PackedBatch,
    verify_log,
    verify_log_batches,
)
from audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    TreeBuilder,
    consistency_proof_ranges,
    inclusion_proof_ranges,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from audit.redaction import Redactor
from audit.webhooks import (
    SignatureInvalid,
    WebhookSecretInvalid,
    secret_key,
    signed_headers,
    verify_delivery,
)
from audit.witness import read_notes, witness

__all__ = [
    "Alert",
    "AlertEvaluator",
    "AuditError",
    "AuditUnavailable",
    "CHECKPOINT_MISSING",
    "CHECKPOINT_SIGNED",
    "Checkpoint",
    "CheckpointInvalid",
    "ConsistencyError",
    "EMPTY_ROOT",
    "ExpectedHead",
    "FORKED",
    "HASH_SIZE",
    "LogBatch",
    "LogRecord",
    "LogReport",
    "PackedBatch",
    "ProofInvalid",
    "Redactor",
    "RulesFile",
    "SignatureInvalid",
    "Signer",
    "TRUNCATED",
    "TreeBuilder",
    "Verifier",
    "Webhook",
    "WebhookSecretInvalid",
    "canonical",
    "consistency_proof_ranges",
    "inclusion_proof_ranges",
    "leaf_hash",
    "load_signer",
    "node_hash",
    "parse_rules",
    "read_notes",
    "secret_key",
    "signed_headers",
    "verify_delivery",
    "root_from_leaf_hashes",
    "save_signer",
    "save_verifier",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
    "verify_log_batches",
    "witness",
]
