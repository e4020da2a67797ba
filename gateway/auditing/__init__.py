"""The auditing wing: the audit log, its index and search, proofs, checkpoints, alerts."""
