"""The audit log's storage in the state database.

Each event is a row holding its canonical JSON body, its hash-chain link and its
RFC 6962 leaf hash; one ``audit_head`` row holds the log's size, the chain's last
hash and the Merkle frontier, so the tree root is known without rereading events.

Appends use group commit: concurrent requests queue their events, and whichever
thread holds the writer lock writes every queued event in one transaction. Each
caller still returns only once its own event is durable, so no data leaves before
its record. Writers are serialized across processes too (``BEGIN IMMEDIATE`` on
SQLite, a transaction-scoped advisory lock on PostgreSQL), so several gateway
processes keep one gap-free log. An append that fails or exceeds its time bound
raises ``AuditUnavailable``: the caller must fail closed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from audit.chain import canonical
from audit.errors import AuditUnavailable
from audit.logcheck import ExpectedHead, LogRecord, LogReport, verify_log
from audit.merkle import HASH_SIZE, TreeBuilder
from audit.redaction import Redactor
from gateway.models import AuditEvent, AuditHead
from gateway.principals import Caller

log = logging.getLogger(__name__)

_ADVISORY_LOCK_ID = 0x6B6C_6175  # "klau": one lock for the whole log
_MAX_TEXT = 512
_MAX_ITEMS = 1000
_MAX_NAME = 64
_MAX_BATCH = 2000

Listener = Callable[[Sequence[Mapping[str, Any]]], None]


@dataclass(frozen=True, slots=True)
class RequestMeta:
    request_id: str
    client: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class Head:
    size: int
    chain_head: str
    frontier: tuple[bytes, ...]

    def root(self) -> bytes:
        return TreeBuilder.from_frontier(self.size, self.frontier).root()


@dataclass(eq=False)
class _Pending:
    event: dict[str, Any]
    moment: datetime
    done: threading.Event = field(default_factory=threading.Event)
    seq: int = 0
    error: BaseException | None = None


def _clip(value: str | None, limit: int = _MAX_TEXT) -> str | None:
    # Anything a client controls is bounded; JSON encoding keeps newlines and escapes inert.
    return None if value is None else value[:limit]


def _bounded(value: Any) -> Any:
    """Bound every string and list a caller may have supplied, however deeply nested."""
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, list | tuple):
        return [_bounded(item) for item in value[:_MAX_ITEMS]]
    if isinstance(value, dict):
        return {str(k)[:_MAX_NAME]: _bounded(v) for k, v in list(value.items())[:_MAX_ITEMS]}
    return value


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_frontier(text_value: str) -> tuple[bytes, ...]:
    raw = bytes.fromhex(text_value)
    return tuple(raw[i : i + HASH_SIZE] for i in range(0, len(raw), HASH_SIZE))


class AuditLog:
    def __init__(
        self, engine: Engine, redactor: Redactor, *, policy_version: str, timeout_s: float = 2.0
    ) -> None:
        self._engine = engine
        self.redactor = redactor
        self.policy_version = policy_version
        self._timeout_s = timeout_s
        self._write_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._postgres = engine.dialect.name == "postgresql"
        self._listeners: list[Listener] = []

    @property
    def engine(self) -> Engine:
        return self._engine

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(events)`` after each commit; it must be quick and not raise."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- appending -----------------------------------------------------------------

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
        event: dict[str, Any] = {k: _bounded(v) for k, v in details.items()}
        # The searchable columns have fixed widths: clip before hashing, so the stored
        # column and the hashed body always agree.
        event.update(
            {
                "ts": moment.isoformat(),
                "request_id": _clip(meta.request_id, _MAX_NAME) if meta else None,
                "actor": _clip(caller.name if caller else actor, _MAX_NAME),
                "actor_kind": _clip(caller.kind, 16) if caller else None,
                "actor_org": _clip(caller.org, _MAX_NAME) if caller else None,
                "action": action[:32],
                "dataset": _clip(dataset, _MAX_NAME),
                "module": _clip(module, _MAX_NAME),
                "decision": _clip(decision, 16),
                "reasons": [_clip(r) for r in list(reasons)[:_MAX_ITEMS]],
                "policy_version": self.policy_version,
                "client": _clip(meta.client) if meta else None,
                "user_agent": _clip(meta.user_agent) if meta else None,
            }
        )
        return self._submit(_Pending(event, moment))

    def _submit(self, item: _Pending) -> int:
        deadline = time.monotonic() + self._timeout_s
        with self._queue_lock:
            self._queue.append(item)
        while not item.done.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._write_lock.acquire(timeout=remaining):
                break
            try:
                if not item.done.is_set():
                    self._flush()
            finally:
                self._write_lock.release()
        if not item.done.is_set():
            with self._queue_lock:
                if item in self._queue:
                    self._queue.remove(item)
                    raise AuditUnavailable("timed out waiting to append to the audit log")
            # A writer has taken the event: it is being written right now. Wait for it
            # briefly rather than report a failure for an event that may well commit.
            if not item.done.wait(self._timeout_s):
                raise AuditUnavailable("timed out waiting to append to the audit log")
        if item.error is not None:
            raise AuditUnavailable("the audit log could not be written") from item.error
        return item.seq

    def _flush(self) -> None:
        """Write every queued event in one transaction (called with the writer lock)."""
        with self._queue_lock:
            batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
        if not batch:
            return
        try:
            events = self._write(batch)
        except BaseException as exc:
            if isinstance(exc, SQLAlchemyError):
                log.error("audit append failed: %s", type(exc).__name__)
            for item in batch:
                item.error = exc
                item.done.set()
            if not isinstance(exc, Exception):
                raise
            return
        for item in batch:
            item.done.set()
        for listener in list(self._listeners):
            try:
                listener(events)
            except Exception:
                log.exception("an audit listener failed")

    def _write(self, batch: list[_Pending]) -> list[dict[str, Any]]:
        timeout_ms = int(self._timeout_s * 1000)
        with self._engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn:
            if not self._postgres:
                # Bound the wait for another process's write lock by the append bound.
                conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                    f"PRAGMA busy_timeout = {timeout_ms}"
                )
            with conn.begin():
                if self._postgres:
                    conn.execute(text(f"SET LOCAL lock_timeout = {timeout_ms}"))
                    conn.execute(text(f"SET LOCAL statement_timeout = {timeout_ms}"))
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID}
                    )
                head = self._read_head(conn)
                builder = TreeBuilder.from_frontier(head.size, head.frontier)
                prev, seq = head.chain_head, head.size
                rows = []
                sha256 = hashlib.sha256
                for item in batch:
                    seq += 1
                    event = item.event
                    event["seq"] = seq
                    body = canonical(event)
                    chained = sha256(bytes.fromhex(prev) + body).hexdigest()
                    leaf = sha256(b"\x00" + body).digest()
                    builder.append(leaf)
                    rows.append(
                        {
                            "seq": seq,
                            "ts": item.moment,
                            "request_id": event["request_id"],
                            "actor": event["actor"],
                            "action": event["action"],
                            "dataset": event["dataset"],
                            "decision": event["decision"],
                            "body": body.decode(),
                            "prev_hash": prev,
                            "hash": chained,
                            "leaf_hash": leaf.hex(),
                            "actor_kind": event["actor_kind"],
                            "actor_org": event["actor_org"],
                            "module": event["module"],
                        }
                    )
                    item.seq = seq
                    prev = chained
                conn.execute(insert(AuditEvent), rows)
                moved = conn.execute(
                    update(AuditHead)
                    .where(AuditHead.id == 1, AuditHead.size == head.size)
                    .values(size=seq, chain_head=prev, frontier=b"".join(builder.frontier).hex())
                )
                if moved.rowcount != 1:
                    raise AuditUnavailable("the audit head moved during an append")
        return [item.event for item in batch]

    @staticmethod
    def _read_head(conn: Connection) -> Head:
        row = conn.execute(
            select(AuditHead.size, AuditHead.chain_head, AuditHead.frontier).where(
                AuditHead.id == 1
            )
        ).first()
        if row is None:
            # Without its head the log cannot continue its chain: refuse, never restart.
            raise AuditUnavailable("the audit log's head record is missing")
        return Head(int(row.size), row.chain_head, _parse_frontier(row.frontier))

    # -- reading -------------------------------------------------------------------

    def head(self) -> Head:
        with self._engine.connect() as conn:
            return self._read_head(conn)

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes of tree indices [start, end) (events start+1 .. end)."""
        with self._engine.connect() as conn:
            values = conn.execute(
                select(AuditEvent.leaf_hash)
                .where(AuditEvent.seq > start, AuditEvent.seq <= end)
                .order_by(AuditEvent.seq)
            ).scalars()
            return [bytes.fromhex(v) if v else b"" for v in values]

    def records(self, *, batch: int = 20_000, upto: int | None = None) -> Iterator[LogRecord]:
        """Every event in sequence order, streamed in batches, as verify needs them."""
        table = AuditEvent.__table__
        columns = [
            table.c.seq,
            table.c.ts,
            table.c.request_id,
            table.c.actor,
            table.c.action,
            table.c.dataset,
            table.c.decision,
            table.c.body,
            table.c.prev_hash,
            table.c.hash,
            table.c.leaf_hash,
            table.c.actor_kind,
            table.c.actor_org,
            table.c.module,
        ]
        after = -(2**62)
        while True:
            query = select(*columns).where(table.c.seq > after).order_by(table.c.seq).limit(batch)
            if upto is not None:
                query = query.where(table.c.seq <= upto)
            with self._engine.connect() as conn:
                rows = conn.execute(query).all()
            if not rows:
                return
            for (
                seq,
                ts,
                request_id,
                actor,
                action,
                dataset,
                decision,
                body,
                prev_hash,
                hash_,
                leaf_hash,
                actor_kind,
                actor_org,
                module,
            ) in rows:
                yield LogRecord(
                    seq,
                    body.encode(),
                    prev_hash,
                    hash_,
                    leaf_hash,
                    {
                        "ts": _aware(ts).isoformat(),
                        "request_id": request_id,
                        "actor": actor,
                        "action": action,
                        "dataset": dataset,
                        "decision": decision,
                        "actor_kind": actor_kind,
                        "actor_org": actor_org,
                        "module": module,
                    },
                )
            after = rows[-1][0]

    def verify(self, **kwargs: Any) -> LogReport:
        """Recompute the chain, the leaves and the tree; see ``audit.logcheck``."""
        head = self.head()
        return verify_log(self.records(), head=ExpectedHead(head.size, head.chain_head), **kwargs)

    def event(self, seq: int) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            body = conn.execute(select(AuditEvent.body).where(AuditEvent.seq == seq)).scalar()
        return None if body is None else orjson.loads(body)

    def body(self, seq: int) -> str | None:
        """The stored canonical JSON of one event, exactly as its hashes cover it."""
        with self._engine.connect() as conn:
            body = conn.execute(select(AuditEvent.body).where(AuditEvent.seq == seq)).scalar()
        return None if body is None else str(body)

    def tail(self, count: int = 20) -> list[Mapping[str, Any]]:
        with self._engine.connect() as conn:
            rows = (
                conn.execute(select(AuditEvent.body).order_by(AuditEvent.seq.desc()).limit(count))
                .scalars()
                .all()
            )
        return [orjson.loads(body) for body in reversed(rows)]
