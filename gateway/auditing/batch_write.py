"""One group-commit transaction of the audit log: link queued events into the hash
chain and the Merkle tree, and store them with the new head.

The hot path speaks to the driver directly: SQLAlchemy's per-statement work costs
more than the append itself. The SQL is fixed text with bound values.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from audit import HASH_SIZE, AuditUnavailable, TreeBuilder, canonical
from gateway.auditing.fields import Prepared
from gateway.auditing.wakeups import Wakeup

ADVISORY_LOCK_ID = 0x6B6C_6175  # "klau": one lock for the whole log

# The head moves only from the head the batch was linked to: a writer that continues
# from a head it remembers finds out here, in its own transaction, that another
# process appended since (the chain hash names the whole history, not just its length).
_MOVE_HEAD = (
    "UPDATE audit_head SET size = ?, chain_head = ?, frontier = ? "
    "WHERE id = 1 AND size = ? AND chain_head = ?"
)
_READ_HEAD = "SELECT size, chain_head, frontier FROM audit_head WHERE id = 1"
_COLUMNS = (
    "seq, ts, request_id, actor, action, dataset, decision, body, prev_hash, hash, leaf_hash, "
    "actor_kind, actor_org, module"
)
_INSERT_EVENTS = f"INSERT INTO audit_events ({_COLUMNS}) VALUES ({', '.join(['?'] * 14)})"
# On PostgreSQL each round trip to the server costs more than the statements, so the
# statements of a batch are sent together (pipeline mode) and answered together. The
# head moves in the statement that inserts the rows, which inserts none unless it moved:
# a batch linked to an outdated head writes nothing, even though its commit was
# already sent with it.
_TIMEOUTS_PG = (
    "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)"
)
_LOCK_PG = f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_ID})"
_ARRAY_TYPES_PG = (
    "bigint timestamptz text text text text text text text text text text text text".split()
)
_APPEND_PG = (
    "WITH moved AS (UPDATE audit_head SET size = %s, chain_head = %s, frontier = %s "
    "WHERE id = 1 AND size = %s AND chain_head = %s RETURNING size) "
    f"INSERT INTO audit_events ({_COLUMNS}) SELECT rows.* FROM moved, unnest("
    + ", ".join(f"%b::{kind}[]" for kind in _ARRAY_TYPES_PG)
    + f") AS rows ({_COLUMNS})"
)


@dataclass(frozen=True, slots=True)
class Head:
    """Where the log ends: its size, the chain's last hash and the Merkle frontier."""

    size: int
    chain_head: str
    frontier: tuple[bytes, ...]

    def root(self) -> bytes:
        return TreeBuilder.from_frontier(self.size, self.frontier).root()


@dataclass(eq=False)
class Pending:
    # Appended together, in this order; each event after the first gets the first's
    # sequence number under ``link``.
    events: list[Prepared]
    link: str | None = None
    # Set when the events are written (or failed), or when this caller must lead.
    signal: Wakeup = field(default_factory=Wakeup)
    done: bool = False
    promoted: bool = False
    seqs: list[int] = field(default_factory=list)
    error: BaseException | None = None
    # When its caller's deadline passes (time.monotonic()): a batch is written within
    # the earliest of its events', so that no caller waits past its own.
    until: float = float("inf")


def parse_frontier(text_value: str) -> tuple[bytes, ...]:
    raw = bytes.fromhex(text_value)
    return tuple(raw[i : i + HASH_SIZE] for i in range(0, len(raw), HASH_SIZE))


def write_batch(
    raw: Any, batch: Sequence[Pending], *, postgres: bool, timeout_s: float, known: Head | None
) -> Head:
    """Append every event of ``batch`` in one transaction on the driver connection
    ``raw``, or raise with the transaction rolled back; the head after it.

    The batch continues from ``known`` (the head after this writer's previous batch)
    when the stored head still equals it, which saves reading it; otherwise, as when
    another process appended in between, from the stored head, read under the lock."""
    timeout_ms = int(timeout_s * 1000)
    try:
        if postgres:
            return _write_postgres(raw, batch, known, timeout_ms)
        return _write_sqlite(raw.cursor(), batch, known)
    except BaseException:
        if postgres:
            raw.rollback()
        else:
            with contextlib.suppress(sqlite3.Error):
                raw.cursor().execute("ROLLBACK")
        raise


def _write_sqlite(cursor: Any, batch: Sequence[Pending], known: Head | None) -> Head:
    # Linked before the write lock is taken: the lock is the other processes' wait.
    linked = None if known is None else _link(batch, known, postgres=False)
    cursor.execute("BEGIN IMMEDIATE")
    if known is None or linked is None or not _moved(cursor, known, linked.head):
        start = _stored_head(cursor.execute(_READ_HEAD).fetchone())
        linked = _link(batch, start, postgres=False)
        if not _moved(cursor, start, linked.head):
            raise AuditUnavailable("the audit head moved during an append")
    cursor.executemany(_INSERT_EVENTS, linked.rows)
    cursor.execute("COMMIT")
    return linked.head


def _moved(cursor: Any, start: Head, end: Head) -> bool:
    frontier = b"".join(end.frontier).hex()
    cursor.execute(_MOVE_HEAD, (end.size, end.chain_head, frontier, start.size, start.chain_head))
    return bool(cursor.rowcount == 1)


def _write_postgres(
    raw: Any, batch: Sequence[Pending], known: Head | None, timeout_ms: int
) -> Head:
    conn = raw.driver_connection
    cursor, append = conn.cursor(), conn.cursor()
    settings = (str(timeout_ms), str(timeout_ms))
    if known is not None:
        linked = _link(batch, known, postgres=True)
        with conn.pipeline():
            cursor.execute(_TIMEOUTS_PG, settings)
            cursor.execute(_LOCK_PG)
            append.execute(_APPEND_PG, _append_params(known, linked))
            conn.commit()
        if append.rowcount == len(linked.rows):
            return linked.head
        # Another process appended since: nothing was written, start over from its head.
    cursor.execute(_TIMEOUTS_PG, settings)
    cursor.execute(_LOCK_PG)
    start = _stored_head(cursor.execute(_READ_HEAD).fetchone())
    linked = _link(batch, start, postgres=True)
    with conn.pipeline():
        append.execute(_APPEND_PG, _append_params(start, linked))
        conn.commit()
    if append.rowcount != len(linked.rows):
        raise AuditUnavailable("the audit head moved during an append")
    return linked.head


def _append_params(start: Head, linked: _Linked) -> tuple[Any, ...]:
    end = linked.head
    frontier = b"".join(end.frontier).hex()
    columns = [list(values) for values in zip(*linked.rows, strict=True)]
    return (end.size, end.chain_head, frontier, start.size, start.chain_head, *columns)


def _stored_head(found: Any) -> Head:
    if found is None:
        # Without its head the log cannot continue its chain: never restart it.
        raise AuditUnavailable("the audit log's head record is missing")
    return Head(int(found[0]), str(found[1]), parse_frontier(found[2]))


@dataclass(frozen=True, slots=True)
class _Linked:
    rows: list[tuple[Any, ...]]
    head: Head


def _link(batch: Sequence[Pending], start: Head, *, postgres: bool) -> _Linked:
    """Number, chain and hash every event from ``start``: the rows to insert and the
    head after them. One loop over all events: this is the append's cost."""
    rows = []
    leaves = []
    seq = start.size
    prev = start.chain_head
    sha256 = hashlib.sha256
    for item in batch:
        item.seqs.clear()
    for item, prepared in ((i, p) for i in batch for p in i.events):
        seq += 1
        event = prepared.event
        if item.seqs and item.link is not None:
            event[item.link] = item.seqs[0]
        event["seq"] = seq
        body = canonical(event)
        chained = sha256(bytes.fromhex(prev) + body).hexdigest()
        leaf = sha256(b"\x00" + body).digest()
        leaves.append(leaf)
        moment: Any = prepared.moment
        if not postgres:
            # SQLAlchemy's SQLite DateTime text form, so its reads agree.
            moment = moment.replace(tzinfo=None).isoformat(" ", "microseconds")
        rows.append(
            (
                seq,
                moment,
                event["request_id"],
                event["actor"],
                event["action"],
                event["dataset"],
                event["decision"],
                body.decode(),
                prev,
                chained,
                leaf.hex(),
                event["actor_kind"],
                event["actor_org"],
                event["module"],
            )
        )
        item.seqs.append(seq)
        prev = chained
    # The whole batch in one call: the builder walks every level of the tree per call.
    builder = TreeBuilder.from_frontier(start.size, start.frontier)
    builder.extend(leaves)
    return _Linked(rows, Head(seq, prev, builder.frontier))
