"""Everything around the audit log that runs beside the gateway: proofs, the signing
key and checkpointer, the witness file, and alerts, started and stopped together."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from audit import AuditError, witness
from gateway.auditing.alerts import AlertEngine, load_rules_file
from gateway.auditing.checkpointer import Checkpointer, StoredCheckpoint, load_or_create_signer
from gateway.auditing.log import AuditLog
from gateway.auditing.proofs import ProofSource
from gateway.config import Config, resolve_secret

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class AuditTrail:
    audit: AuditLog
    checkpointer: Checkpointer
    proofs: ProofSource
    alerts: AlertEngine | None = None

    @classmethod
    def from_config(cls, config: Config, audit: AuditLog) -> AuditTrail:
        section = config.gateway
        signer = load_or_create_signer(config.resolve_path(section.key_dir), section.audit_origin)
        proofs = ProofSource(audit)
        witness_path = config.resolve_path(section.witness_file) if section.witness_file else None
        verifier = signer.verifier()
        hook: Callable[[StoredCheckpoint], None] | None = None
        if witness_path is not None:

            def hook(stored: StoredCheckpoint) -> None:
                try:
                    witness(
                        witness_path,
                        stored.note,
                        verifier=verifier,
                        origin=section.audit_origin,
                        consistency=proofs.consistency,
                    )
                except (AuditError, OSError) as exc:
                    log.critical("the witness file %s refused a checkpoint: %s", witness_path, exc)

        checkpointer = Checkpointer(
            audit,
            proofs,
            signer,
            origin=section.audit_origin,
            interval_s=section.checkpoint_interval_s,
            on_checkpoint=hook,
        )
        alerts = None
        if section.alert_rules:
            rules = load_rules_file(config.resolve_path(section.alert_rules))

            def dereference(reference: str) -> str:
                return resolve_secret(reference, config.base_dir)

            alerts = AlertEngine(audit, rules, dereference)
        return cls(audit, checkpointer, proofs, alerts)

    def start(self) -> None:
        if self.alerts is not None:
            self.alerts.start()
        self.checkpointer.start()

    def stop(self) -> None:
        if self.alerts is not None:
            if self.alerts.leading:
                self.alerts.wait_idle(5.0)
            self.alerts.stop()
        self.checkpointer.stop()
