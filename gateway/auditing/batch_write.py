"""One group-commit transaction of the audit log: link queued events into the hash
chain and the Merkle tree, and store them with the new head.

The hot path speaks to the driver directly: SQLAlchemy's per-statement work costs
more than the append itself. The SQL is fixed text with bound values.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from audit import HASH_SIZE, AuditUnavailable, TreeBuilder, canonical
from gateway.auditing.fields import Prepared

ADVISORY_LOCK_ID = 0x6B6C_6175  # "klau": one lock for the whole log

_UPDATE_HEAD = (
    "UPDATE audit_head SET size = {m}, chain_head = {m}, frontier = {m} WHERE id = 1 AND size = {m}"
)
_COLUMNS = (
    "seq, ts, request_id, actor, action, dataset, decision, body, prev_hash, hash, leaf_hash, "
    "actor_kind, actor_org, module"
)
# On PostgreSQL each statement is a round trip to the server, and the append is made of
# little else: the writer's settings, its lock and the head go in one simple query (its
# statements still run one after the other, each seeing what the one before waited
# for), and the rows in one COPY, as text the append writes itself.
_BEGIN_PG = (
    "SET LOCAL lock_timeout = {ms}; SET LOCAL statement_timeout = {ms}; "
    f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_ID}); "
    "SELECT size, chain_head, frontier FROM audit_head WHERE id = 1"
)
_COPY_PG = f"COPY audit_events ({_COLUMNS}) FROM STDIN"
# COPY's text format: a backslash starts an escape, tabs and newlines end fields and rows.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_INSERT_EVENTS = f"INSERT INTO audit_events ({_COLUMNS}) VALUES ({', '.join(['?'] * 14)})"


@dataclass(eq=False)
class Pending:
    # Appended together, in this order; each event after the first gets the first's
    # sequence number under ``link``.
    events: list[Prepared]
    link: str | None = None
    # Set when the events are written (or failed), or when this caller must lead.
    signal: threading.Event = field(default_factory=threading.Event)
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
    raw: Any, batch: Sequence[Pending], *, postgres: bool, timeout_s: float
) -> list[dict[str, Any]]:
    """Append every event of ``batch`` in one transaction on the driver connection
    ``raw``, or raise with the transaction rolled back; the events, as stored."""
    cursor = raw.cursor()
    try:
        size, prev, builder = _begin(cursor, postgres=postgres, timeout_ms=int(timeout_s * 1000))
        rows, seq, prev = _link(batch, size, prev, builder, postgres=postgres)
        _store(cursor, rows, postgres=postgres, size=size, seq=seq, prev=prev, builder=builder)
        if postgres:
            raw.commit()
        else:
            cursor.execute("COMMIT")
    except BaseException:
        if postgres:
            raw.rollback()
        else:
            with contextlib.suppress(sqlite3.Error):
                cursor.execute("ROLLBACK")
        raise
    return [prepared.event for item in batch for prepared in item.events]


def _begin(cursor: Any, *, postgres: bool, timeout_ms: int) -> tuple[int, str, TreeBuilder]:
    """Start the transaction holding the one writer lock of the log, across processes;
    the head it continues from."""
    if postgres:
        cursor.execute(_BEGIN_PG.format(ms=int(timeout_ms)))
        while cursor.nextset():  # the head is the last statement's answer
            pass
    else:
        cursor.execute("BEGIN IMMEDIATE")
        cursor.execute("SELECT size, chain_head, frontier FROM audit_head WHERE id = 1")
    found = cursor.fetchone()
    if found is None:
        # Without its head the log cannot continue its chain: never restart it.
        raise AuditUnavailable("the audit log's head record is missing")
    size = int(found[0])
    return size, str(found[1]), TreeBuilder.from_frontier(size, parse_frontier(found[2]))


def _link(
    batch: Sequence[Pending], size: int, prev: str, builder: TreeBuilder, *, postgres: bool
) -> tuple[list[tuple[Any, ...]], int, str]:
    """Number, chain and hash every event; the rows to insert, the last sequence number
    and the last chain hash. One loop over all events: this is the append's cost."""
    rows = []
    leaves = []
    seq = size
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
    builder.extend(leaves)
    return rows, seq, prev


def _copy_line(row: tuple[Any, ...]) -> str:
    return (
        "\t".join("\\N" if value is None else str(value).translate(_COPY_ESCAPES) for value in row)
        + "\n"
    )


def _store(
    cursor: Any,
    rows: list[tuple[Any, ...]],
    *,
    postgres: bool,
    size: int,
    seq: int,
    prev: str,
    builder: TreeBuilder,
) -> None:
    """Insert the rows and move the head, only if no other writer moved it first."""
    frontier = b"".join(builder.frontier).hex()
    if postgres:
        with cursor.copy(_COPY_PG) as copy:
            copy.write("".join(map(_copy_line, rows)).encode())
        cursor.execute(_UPDATE_HEAD.format(m="%s"), (seq, prev, frontier, size))
    else:
        cursor.executemany(_INSERT_EVENTS, rows)
        cursor.execute(_UPDATE_HEAD.format(m="?"), (seq, prev, frontier, size))
    if cursor.rowcount != 1:
        raise AuditUnavailable("the audit head moved during an append")
