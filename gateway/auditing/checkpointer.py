"""Signed checkpoints of the audit log: the signing key, issuing, storing, the timer.

A checkpoint is only signed after the new tree is proven consistent with the last one
signed (from the stored leaf hashes): a state database whose history was rewritten is
refused a signature rather than blessed with one.

Each checkpoint signed here is then recorded in the log itself (``checkpoint.signed``,
with its size and root), so that the hash chain vouches for the checkpoints table:
``audit verify`` fails when a recorded checkpoint is no longer stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from audit import (
    CHECKPOINT_SIGNED,
    AuditError,
    AuditUnavailable,
    Checkpoint,
    ConsistencyError,
    ProofInvalid,
    Signer,
    Verifier,
    load_signer,
    save_signer,
    save_verifier,
    verify_consistency,
)
from gateway.auditing.log import AuditLog
from gateway.auditing.proofs import ProofSource
from gateway.periodic import Periodic
from gateway.state.models import AuditCheckpoint

log = logging.getLogger(__name__)

SIGNING_KEY_FILE = "audit-signing.key"
PUBLIC_KEY_FILE = "audit-signing.pub"


def load_or_create_signer(key_dir: Path, name: str) -> Signer:
    """The log's Ed25519 key from ``key_dir`` (0600), created on first use."""
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = key_dir / SIGNING_KEY_FILE
    if not path.exists():
        try:
            save_signer(Signer.generate(name), path)
            log.info("created the audit signing key %s", path)
        except FileExistsError:
            pass  # another gateway process created it first: use theirs
    if path.stat().st_mode & 0o077:
        raise AuditUnavailable(f"audit signing key {path} must not be readable by others")
    signer = load_signer(path)
    public = key_dir / PUBLIC_KEY_FILE
    if not public.exists():
        try:
            save_verifier(signer.verifier(), public)
        except FileExistsError:
            pass
    return signer


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    checkpoint: Checkpoint
    note: str
    created_at: datetime


class Checkpointer:
    def __init__(
        self,
        audit: AuditLog,
        proofs: ProofSource,
        signer: Signer,
        *,
        origin: str,
        interval_s: float = 10.0,
        on_checkpoint: Callable[[StoredCheckpoint], None] | None = None,
    ) -> None:
        self._audit = audit
        self._proofs = proofs
        self._signer = signer
        self.origin = origin
        self.verifier: Verifier = signer.verifier()
        self._on_checkpoint = on_checkpoint
        self._lock = threading.Lock()
        self._timer = Periodic("audit-checkpointer", interval_s, self._safely_checkpoint)

    # -- reading -------------------------------------------------------------------

    def _stored(self, note: str, created_at: datetime) -> StoredCheckpoint:
        # Read back through the verifier: a note edited in the database is refused.
        checkpoint = self.verifier.verify(note, origin=self.origin)
        moment = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
        return StoredCheckpoint(checkpoint, note, moment)

    def latest(self) -> StoredCheckpoint | None:
        with self._audit.engine.connect() as conn:
            row = conn.execute(
                select(AuditCheckpoint.note, AuditCheckpoint.created_at)
                .order_by(AuditCheckpoint.tree_size.desc())
                .limit(1)
            ).first()
        return None if row is None else self._stored(row.note, row.created_at)

    def at_size(self, tree_size: int) -> StoredCheckpoint | None:
        with self._audit.engine.connect() as conn:
            row = conn.execute(
                select(AuditCheckpoint.note, AuditCheckpoint.created_at).where(
                    AuditCheckpoint.tree_size == tree_size
                )
            ).first()
        return None if row is None else self._stored(row.note, row.created_at)

    def all_notes(self) -> list[str]:
        with self._audit.engine.connect() as conn:
            return list(
                conn.execute(
                    select(AuditCheckpoint.note).order_by(AuditCheckpoint.tree_size)
                ).scalars()
            )

    # -- issuing -------------------------------------------------------------------

    def _is_current(self, previous: StoredCheckpoint | None, size: int, *, force: bool) -> bool:
        """Whether ``previous`` still covers the log: nothing was appended after it, or
        only its own record (signing again for that would record again, forever)."""
        if previous is None:
            return False
        signed = previous.checkpoint.tree_size
        if signed >= size:
            return True
        if force or size != signed + 1:
            return False
        last = self._audit.event(size) or {}
        return last.get("action") == CHECKPOINT_SIGNED and last.get("tree_size") == signed

    def checkpoint(self, *, force: bool = False) -> StoredCheckpoint | None:
        """Sign the current tree if it grew since the last checkpoint; return the latest.

        ``force`` signs a tree that grew by the last checkpoint's record alone."""
        with self._lock:
            head = self._audit.head()
            previous = self.latest()
            if self._is_current(previous, head.size, force=force):
                return previous
            root = head.root()
            if previous is not None:
                old = previous.checkpoint
                proof = self._proofs.consistency(old.tree_size, head.size)
                try:
                    verify_consistency(old.tree_size, head.size, old.root_hash, root, proof)
                except ProofInvalid as exc:
                    log.critical("refusing to sign: the audit log forked from %s", old.tree_size)
                    raise ConsistencyError(
                        f"the log at size {head.size} is not an extension of the checkpoint "
                        f"at size {old.tree_size}: history was rewritten"
                    ) from exc
            checkpoint = Checkpoint(self.origin, head.size, root)
            note = self._signer.sign(checkpoint)
            moment = datetime.now(UTC)
            try:
                with self._audit.engine.begin() as conn:
                    conn.execute(
                        insert(AuditCheckpoint).values(
                            tree_size=head.size, root_hash=root.hex(), note=note, created_at=moment
                        )
                    )
            except IntegrityError:
                # Another gateway process signed the same size: its root must be ours.
                existing = self.at_size(head.size)
                if existing is None or existing.checkpoint.root_hash != root:
                    raise ConsistencyError(
                        f"two different roots were signed for size {head.size}"
                    ) from None
                return existing
            stored = StoredCheckpoint(checkpoint, note, moment)
            # Recorded after it is stored: a crash in between leaves a checkpoint the
            # log does not vouch for, never a record of one that does not exist.
            self._audit.append(CHECKPOINT_SIGNED, tree_size=head.size, root=root.hex())
        if self._on_checkpoint is not None:
            try:
                self._on_checkpoint(stored)
            except Exception:
                log.exception("the checkpoint hook failed")
        return stored

    def covering(self, tree_size: int) -> StoredCheckpoint:
        """The latest checkpoint, signing a fresh one if it does not cover ``tree_size``."""
        latest = self.latest()
        if latest is None or latest.checkpoint.tree_size < tree_size:
            latest = self.checkpoint(force=True)
        if latest is None or latest.checkpoint.tree_size < tree_size:
            raise AuditError(f"no checkpoint covers event {tree_size} yet")
        return latest

    # -- the timer -----------------------------------------------------------------

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        """Stop the timer and sign a last checkpoint, so shutdown leaves nothing unsigned."""
        self._timer.stop()
        self._safely_checkpoint()

    def _safely_checkpoint(self) -> None:
        try:
            self.checkpoint()
        except (AuditError, SQLAlchemyError, OSError):
            log.exception("could not sign an audit checkpoint")
