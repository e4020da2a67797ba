"""The audit log's storage in the state database.

Appends are serialized (a process lock, plus ``BEGIN IMMEDIATE`` on SQLite or a
transaction-scoped advisory lock on PostgreSQL, so several gateway processes keep one
gap-free chain). An append that fails or exceeds its time bound raises
``AuditUnavailable``: the caller must fail closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, text
from sqlalchemy.exc import SQLAlchemyError

from audit.chain import GENESIS, StoredEvent, VerifyReport, canonical, link, verify
from audit.errors import AuditUnavailable
from audit.redaction import Redactor
from gateway.models import AuditEvent
from gateway.principals import Caller

log = logging.getLogger(__name__)

_ADVISORY_LOCK_ID = 0x6B6C_6175  # "klau": one lock for the whole log
_MAX_TEXT = 512


@dataclass(frozen=True, slots=True)
class RequestMeta:
    request_id: str
    client: str | None = None
    user_agent: str | None = None


def _clip(value: str | None) -> str | None:
    # Anything a client controls is bounded; JSON encoding keeps newlines and escapes inert.
    return None if value is None else value[:_MAX_TEXT]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class AuditLog:
    def __init__(
        self, engine: Engine, redactor: Redactor, *, policy_version: str, timeout_s: float = 2.0
    ) -> None:
        self._engine = engine
        self.redactor = redactor
        self.policy_version = policy_version
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._postgres = engine.dialect.name == "postgresql"

    def append(
        self,
        action: str,
        *,
        meta: RequestMeta | None = None,
        caller: Caller | None = None,
        actor: str | None = None,
        dataset: str | None = None,
        module: str | None = None,
        decision: str | None = None,
        reasons: tuple[str, ...] | list[str] = (),
        **details: Any,
    ) -> int:
        """Append one event and return its sequence number, or raise AuditUnavailable."""
        moment = datetime.now(UTC)
        event: dict[str, Any] = {
            "ts": moment.isoformat(),
            "request_id": meta.request_id if meta else None,
            "actor": caller.name if caller else actor,
            "actor_kind": caller.kind if caller else None,
            "actor_org": caller.org if caller else None,
            "action": action,
            "dataset": dataset,
            "module": module,
            "decision": decision,
            "reasons": [_clip(r) for r in reasons],
            "policy_version": self.policy_version,
            "client": _clip(meta.client) if meta else None,
            "user_agent": _clip(meta.user_agent) if meta else None,
        }
        event.update(details)
        if not self._lock.acquire(timeout=self._timeout_s):
            raise AuditUnavailable("timed out waiting to append to the audit log")
        try:
            return self._write(event, moment)
        except SQLAlchemyError as exc:
            log.error("audit append failed: %s", type(exc).__name__)
            raise AuditUnavailable("the audit log could not be written") from exc
        finally:
            self._lock.release()

    def _write(self, event: dict[str, Any], moment: datetime) -> int:
        timeout_ms = int(self._timeout_s * 1000)
        with self._engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn:
            with conn.begin():
                if self._postgres:
                    conn.execute(text(f"SET LOCAL lock_timeout = {timeout_ms}"))
                    conn.execute(text(f"SET LOCAL statement_timeout = {timeout_ms}"))
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID}
                    )
                last = conn.execute(
                    select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
                ).first()
                seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
                event["seq"] = seq
                body = canonical(event)
                conn.execute(
                    insert(AuditEvent).values(
                        seq=seq,
                        ts=moment,
                        request_id=event["request_id"],
                        actor=event["actor"],
                        action=event["action"],
                        dataset=event["dataset"],
                        decision=event["decision"],
                        body=body.decode(),
                        prev_hash=prev,
                        hash=link(prev, body),
                    )
                )
        return int(seq)

    def stored_events(self, *, batch: int = 5000) -> Iterator[StoredEvent]:
        """Every event in sequence order, streamed in batches."""
        after = 0
        while True:
            with self._engine.connect() as conn:
                table = AuditEvent.__table__
                rows = conn.execute(
                    select(table).where(table.c.seq > after).order_by(table.c.seq).limit(batch)
                ).all()
            if not rows:
                return
            for row in rows:
                yield StoredEvent(
                    seq=row.seq,
                    body=row.body.encode(),
                    prev_hash=row.prev_hash,
                    hash=row.hash,
                    columns={
                        "ts": _aware(row.ts).isoformat(),
                        "request_id": row.request_id,
                        "actor": row.actor,
                        "action": row.action,
                        "dataset": row.dataset,
                        "decision": row.decision,
                        "seq": row.seq,
                    },
                )
            after = rows[-1].seq

    def verify(self) -> VerifyReport:
        return verify(self.stored_events())

    def tail(self, count: int = 20) -> list[Mapping[str, Any]]:
        import orjson

        with self._engine.connect() as conn:
            rows = (
                conn.execute(select(AuditEvent.body).order_by(AuditEvent.seq.desc()).limit(count))
                .scalars()
                .all()
            )
        return [orjson.loads(body) for body in reversed(rows)]
