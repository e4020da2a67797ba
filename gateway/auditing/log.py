"""The audit log's storage in the state database.

Each event is a row holding its canonical JSON body, its hash-chain link and its
RFC 6962 leaf hash; one ``audit_head`` row holds the log's size, the chain's last
hash and the Merkle frontier, so the tree root is known without rereading events.

Appends use group commit: concurrent requests queue their events, and whichever
thread holds the writer lock writes every queued event in one transaction. Each
caller still returns only once its own event is durable, so no data leaves before
its record. Writers are serialized across processes too (``BEGIN IMMEDIATE`` on
SQLite, a transaction-scoped advisory lock on PostgreSQL), so several gateway
processes keep one gap-free log. A writer remembers the head its last batch left and
continues from it, without reading it, as long as the stored head still equals it;
when another process has appended in between, it continues from the stored one. An
append that fails or exceeds its time bound raises ``AuditUnavailable``: the caller
must fail closed.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select

from audit import (
    AuditUnavailable,
    ExpectedHead,
    LogBatch,
    LogRecord,
    LogReport,
    Redactor,
    verify_log_batches,
)
from gateway import observability
from gateway.access.principals import Caller
from gateway.auditing.batch_write import Head, Pending, parse_frontier, write_batch
from gateway.auditing.fields import Prepared, RequestMeta, prepare_event
from gateway.auditing.index import first_mismatch
from gateway.auditing.log_batches import read_log_batches, read_packed_batches
from gateway.state.database import pooled_connection
from gateway.state.deadline import MIN_WAIT_S, bound_connection, remaining
from gateway.state.models import AuditEvent, AuditHead

log = logging.getLogger(__name__)

_MAX_BATCH = 2000
_GATHER_STEP_S = 0.00005
_GATHER_MAX_S = 0.002

Listener = Callable[[Sequence[Mapping[str, Any]]], None]


def _no_status(_error: Any) -> int | None:
    return None


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
        self._queue: list[Pending] = []
        self._postgres = engine.dialect.name == "postgresql"
        self._listeners: list[Listener] = []
        self._writer: Any = None
        # The head after this writer's last batch (held with the writer lock): the next
        # batch continues from it unless the stored head says another process appended.
        self._head: Head | None = None
        # The size and write time of the last batch, for the next leader's gathering.
        self._last_batch = 0
        self._last_write_s = 0.0
        self._leading = False
        self._request_observers: list[Callable[[str], None]] = []
        # Whether the newest append failed: readiness reports the log unable to write
        # until an append succeeds again.
        self.failing = False
        # The status a refusal is answered with, recorded with it: the HTTP wing that
        # answers owns that table and sets it (``gateway.http.problems.status_of``).
        self.status_of: Callable[[Any], int | None] = _no_status

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def backlog(self) -> int:
        """Events queued in this process, waiting for their commit."""
        with self._queue_lock:
            return sum(len(item.events) for item in self._queue)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(events)`` after each commit; it must be quick and not raise."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def observe_requests(self, observer: Callable[[str], None]) -> None:
        """Call ``observer(request_id)`` for each durable event that names a request, in
        the appending thread before ``append`` returns (so a response that follows the
        append is known to be recorded); it must be quick and not raise."""
        self._request_observers.append(observer)

    def unobserve_requests(self, observer: Callable[[str], None]) -> None:
        if observer in self._request_observers:
            self._request_observers.remove(observer)

    # -- appending -----------------------------------------------------------------

    def append(self, action: str, **fields: Any) -> int:
        """Append one event (``fields`` as for ``prepare``) and return its sequence
        number, or raise AuditUnavailable."""
        return self.append_prepared(self.prepare(action, **fields))

    def append_prepared(self, prepared: Prepared) -> int:
        """Append an event built by ``prepare``; its sequence number."""
        return self._submit(Pending([prepared]))[0]

    def append_linked(self, first: Prepared, second: Prepared, *, link: str) -> tuple[int, int]:
        """Append two events in one transaction, adjacent, with ``second[link]`` set to
        the first's sequence number; their sequence numbers, or AuditUnavailable.

        One commit instead of two for a pair that belongs together (a small read's
        query and its result), and neither is ever stored without the other."""
        first_seq, second_seq = self._submit(Pending([first, second], link=link))
        return first_seq, second_seq

    def prepare(
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
    ) -> Prepared:
        """Build an event (stamped now) without appending it."""
        return prepare_event(
            action,
            policy_version=self.policy_version,
            meta=meta,
            caller=caller,
            actor=actor,
            dataset=dataset,
            module=module,
            decision=decision,
            reasons=reasons,
            details=details,
        )

    def _submit(self, item: Pending) -> list[int]:
        """Queue the event; the one leading caller writes whatever is queued in a single
        transaction (group commit) while the others wait for their own event."""
        actions = ",".join(p.event["action"] for p in item.events)
        with observability.span("kiteline.audit.append", **{"audit.actions": actions}):
            return self._submit_now(item)

    def _submit_now(self, item: Pending) -> list[int]:
        deadline = item.until = time.monotonic() + remaining(self._timeout_s)
        with self._queue_lock:
            self._queue.append(item)
            lead = not self._leading
            self._leading = True
        if not lead:
            if not item.signal.wait(max(0.0, deadline - time.monotonic())):
                with self._queue_lock:
                    if not item.promoted and item in self._queue:
                        self._queue.remove(item)
                        self.failing = True
                        raise AuditUnavailable("timed out waiting to append to the audit log")
                # Either a writer has taken the event and is writing it right now, or
                # this caller was just made the leader: finish rather than report a
                # failure for an event that may well commit.
                item.signal.wait(self._timeout_s)
            if not item.done and not item.promoted:
                self.failing = True
                raise AuditUnavailable("timed out waiting to append to the audit log")
        if not item.done:
            self._lead()
        if item.error is not None:
            self.failing = True
            raise AuditUnavailable("the audit log could not be written") from item.error
        self.failing = False
        for observer in self._request_observers:
            for prepared in item.events:
                request_id = prepared.event.get("request_id")
                if request_id:
                    observer(request_id)
        return item.seqs

    def _lead(self) -> None:
        """Write one batch, hand the lead to the oldest waiting caller, if any, and only
        then wake the batch's callers: the next batch is on its way while they run."""
        batch: list[Pending] = []
        try:
            with self._write_lock:
                self._gather()
                with self._queue_lock:
                    batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
                if batch:
                    self._flush(batch)
                if self._postgres:
                    with self._queue_lock:
                        idle = not self._queue
                    if idle:
                        # A PostgreSQL connection goes back to the pool when nobody
                        # waits, so that disposing of the engine closes it.
                        self._release_writer()
        finally:
            with self._queue_lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.promoted = True
                    successor.signal.set()
                else:
                    self._leading = False
            for item in batch:
                item.signal.set()

    def _gather(self) -> None:
        """Before writing, while far fewer events are queued than the last batch held,
        give the callers it woke a moment to queue their next ones (called with the
        writer lock).

        Without it, busy callers fall into step: the one caller left out of a full batch
        leads the next batch alone while the others are still on their way back, and
        every other commit carries one event. The wait is bounded by the last batch's
        own write time, so it at most doubles an append's latency, and a lone caller
        (a last batch of one) never waits."""
        expected = self._last_batch * 9 // 10
        if expected <= 1:
            return
        until = time.monotonic() + min(self._last_write_s, _GATHER_MAX_S)
        while len(self._queue) < expected and time.monotonic() < until:
            time.sleep(_GATHER_STEP_S)  # lets the callers have the interpreter

    def _flush(self, batch: list[Pending]) -> None:
        """Write the batch in one transaction and record each caller's outcome (called
        with the writer lock)."""
        started = time.monotonic()
        try:
            events = self._write(batch)
        except BaseException as exc:
            log.error("audit append failed: %s", type(exc).__name__)
            for item in batch:
                item.error = exc
                item.done = True
            if not isinstance(exc, Exception):
                raise
            return
        for item in batch:
            item.done = True
        self._last_batch = sum(len(item.events) for item in batch)
        self._last_write_s = time.monotonic() - started
        for listener in list(self._listeners):
            try:
                listener(events)
            except Exception:
                log.exception("an audit listener failed")

    def _write(self, batch: list[Pending]) -> list[dict[str, Any]]:
        raw = self._writer_connection()
        healthy = False
        try:
            wait_s = max(MIN_WAIT_S, min(i.until for i in batch) - time.monotonic())
            if not self._postgres:
                bound_connection(raw.driver_connection, raw.info, wait_s)
            known, self._head = self._head, None
            self._head = write_batch(
                raw, batch, postgres=self._postgres, timeout_s=wait_s, known=known
            )
            healthy = True
        finally:
            if not healthy:
                # After any failure start over on a fresh connection (and from the
                # stored head: a failed commit may or may not have moved it).
                self._drop_writer_connection()
        return [prepared.event for item in batch for prepared in item.events]

    @contextlib.contextmanager
    def read_connection(self) -> Iterator[Any]:
        """A driver connection for one short read that ends its own transaction.

        On SQLite, the writer's own while no append needs it: every append by another
        connection makes SQLite drop a connection's cached pages, so a read on any
        other connection starts cold (about twice the cost per authentication,
        docs/performance.md). Otherwise, and while an append runs, one from the pool."""
        # Appends come first: a read steps aside while any is queued (a racy look at
        # the queue is good enough for that).
        busy = self._leading or self._queue
        if self._postgres or busy or not self._write_lock.acquire(blocking=False):
            with pooled_connection(self._engine) as raw:
                yield raw
            return
        try:
            raw = self._writer_connection()
            yield raw
            if raw.in_transaction:
                # Never leave the writer inside a read: it would keep serving that
                # snapshot (an old revocation state) to the next read.
                raw.rollback()
        except sqlite3.Error:
            self._drop_writer_connection()
            raise
        finally:
            self._write_lock.release()

    def close(self) -> None:
        """Give the writer's connection back to the pool, so that disposing of the engine
        closes it; a later append checks one out again."""
        with self._write_lock:
            self._release_writer()

    def _writer_connection(self) -> Any:
        """The connection appends go through (called with the writer lock). On SQLite it
        stays checked out between appends, until ``close``: a checkout and return per
        append cost more than the append's own statements, and the connection keeps
        its page cache, which its own writes never invalidate."""
        if self._writer is None:
            raw = self._engine.raw_connection()
            busy_timeout_ms = int(self._timeout_s * 1000)
            if not self._postgres and raw.info.get("busy_timeout_ms") != busy_timeout_ms:
                # Bound the wait for another process's write lock by the append bound;
                # set once per pooled connection (``info`` lives as long as it does).
                raw.cursor().execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
                raw.info["busy_timeout_ms"] = busy_timeout_ms
            self._writer = raw
        return self._writer

    def _drop_writer_connection(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.invalidate()
            self._writer = None

    def _release_writer(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None

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
        return Head(int(row.size), row.chain_head, parse_frontier(row.frontier))

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
        for rows in self.record_batches(batch=batch, upto=upto):
            yield from rows.records()

    def record_batches(self, *, batch: int = 20_000, upto: int | None = None) -> Iterator[LogBatch]:
        """Every event in sequence order, as columns of ``batch`` events at a time."""
        return read_log_batches(self._engine, batch=batch, upto=upto)

    def verify(self, **kwargs: Any) -> LogReport:
        """Recompute the chain, the leaves and the tree (see ``audit.logcheck``), then
        check the search index against the events: an event it leaves out or misstates
        is hidden from searches."""
        head = self.head()
        report = verify_log_batches(
            read_packed_batches(self._engine),
            head=ExpectedHead(head.size, head.chain_head),
            **kwargs,
        )
        if not report.ok:
            return report
        hidden = first_mismatch(self._engine)
        if hidden is None:
            return report
        return replace(
            report,
            ok=False,
            problem=f"the search index leaves out or misstates event {hidden} (the log "
            "itself is intact: `kiteline audit reindex` rebuilds the index from it)",
            bad_seq=hidden,
        )

    def event(self, seq: int) -> dict[str, Any] | None:
        body = self.body(seq)
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
