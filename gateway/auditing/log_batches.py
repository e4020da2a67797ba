"""The audit log read back for verification: every event, as columns of a batch, or on
SQLite packed by the database for a bulk check (``read_packed_batches``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any

from sqlalchemy import Engine

from audit import LogBatch, PackedBatch
from gateway.read_ahead import read_ahead


def read_log_batches(
    engine: Engine,
    *,
    batch: int = 20_000,
    upto: int | None = None,
    after: int = -(2**62),
) -> Iterator[LogBatch]:
    """Every event in sequence order after ``after``, as columns of ``batch`` events at
    a time."""
    postgres = engine.dialect.name == "postgresql"
    # The driver's cursor, not SQLAlchemy's rows: verify reads every event, and
    # per-row type processing would cost more than the hashing. SQLite hands the
    # body over as the bytes it stores, not as text to encode again.
    mark = "%s" if postgres else "?"
    body = "body" if postgres else "CAST(body AS BLOB)"
    sql = (
        f"SELECT seq, ts, request_id, actor, action, dataset, decision, {body}, "
        "prev_hash, hash, leaf_hash, actor_kind, actor_org, module FROM audit_events "
        f"WHERE seq > {mark} AND seq <= {mark} ORDER BY seq LIMIT {int(batch)}"
    )
    last = upto if upto is not None else 2**62
    while True:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(sql, (after, last))
            rows = cursor.fetchall()
            raw.rollback()
        finally:
            raw.close()
        if not rows:
            return
        columns = [list(column) for column in zip(*rows, strict=True)]
        yield LogBatch(
            columns[0],
            [b.encode() if isinstance(b, str) else bytes(b) for b in columns[7]],
            columns[8],
            columns[9],
            columns[10],
            {
                "ts": [_body_timestamp(ts) for ts in columns[1]],
                "request_id": columns[2],
                "actor": columns[3],
                "action": columns[4],
                "dataset": columns[5],
                "decision": columns[6],
                "actor_kind": columns[11],
                "actor_org": columns[12],
                "module": columns[13],
            },
        )
        after = rows[-1][0]


def _body_timestamp(ts: Any) -> Any:
    """A stored ``ts`` spelled as the event's body spells it (isoformat, UTC)."""
    if isinstance(ts, str):
        # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff" (UTC); isoformat leaves out a zero
        # fraction.
        fraction = ts[19:]
        return f"{ts[:10]}T{ts[11:19]}{'' if fraction == '.000000' else fraction}+00:00"
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


# The searchable columns as the body spells them (``ts`` as ``_body_timestamp`` does),
# beside the body's own fields: the database compares both as JSON text. JSON text is
# only equal where the values are (a value spelled differently, say with other escapes,
# only sends the events to the event-by-event check).
_TS_AS_IN_BODY = (
    "substr(ts, 1, 10) || 'T' || substr(ts, 12, 8) || "
    "CASE WHEN substr(ts, 20) = '.000000' THEN '' ELSE substr(ts, 20) END || '+00:00'"
)
_FIELDS = (
    "seq",
    "ts",
    "request_id",
    "actor",
    "action",
    "dataset",
    "decision",
    "actor_kind",
    "actor_org",
    "module",
)
_IN_COLUMNS = ", ".join(_TS_AS_IN_BODY if name == "ts" else name for name in _FIELDS)
_IN_BODY = ", ".join(f"'$.{name}'" for name in _FIELDS)
# Text of 64 characters each, as the event-by-event check reads them: only then do the
# three of every event, joined end to end, equal the digests' hex joined alike exactly
# when each equals its digest.
_HASHES_TEXT = " AND ".join(
    f"typeof({name}) = 'text' AND length({name}) = 64"
    for name in ("prev_hash", "hash", "leaf_hash")
)
_AGREES = (
    f"{_HASHES_TEXT} AND typeof(ts) = 'text' AND "
    f"json_extract(body, {_IN_BODY}) = json_array({_IN_COLUMNS})"
)
# A batch as one row, built in a single step of the database (without Python's lock,
# and without a Python object per event): how many events, the highest number, how
# many fail a check the database makes itself, the bodies one per line, and every
# event's three hashes end to end. Should the bodies come joined out of order, the
# chain check fails and the batch is checked event by event: slower, never wrong.
_PACK = (
    "SELECT count(*), max(seq), "
    f"sum(CASE WHEN {_AGREES} THEN 0 ELSE 1 END), "
    "group_concat(body, char(10)), group_concat(prev_hash || hash || leaf_hash, '') "
    f"FROM (SELECT body, prev_hash, hash, leaf_hash, {', '.join(_FIELDS)} "
    "FROM audit_events WHERE seq > ? AND seq <= ? ORDER BY seq)"
)
_NEXT = "SELECT min(seq) FROM audit_events WHERE seq > ? AND seq <= ?"


def read_packed_batches(
    engine: Engine, *, batch: int = 20_000, upto: int | None = None
) -> Iterator[PackedBatch | LogBatch]:
    """As ``_packed_batches``, each batch read by a thread of its own while the one
    before is checked: SQLite runs its JSON functions without Python's lock, so on
    more than one core the reading and the hashing overlap."""
    return read_ahead(
        _packed_batches(engine, batch=batch, upto=upto), name="kiteline-audit-read-ahead"
    )


def _packed_batches(
    engine: Engine, *, batch: int = 20_000, upto: int | None = None
) -> Iterator[PackedBatch | LogBatch]:
    """Every event in sequence order, ``batch`` numbers at a time, packed by SQLite for
    ``audit.logcheck``'s bulk check: the bodies, and one string of every event's hashes,
    where the database finds each event agreeing with its body (compared by its JSON
    functions, in C, instead of parsing every body in Python). A batch the database
    cannot pack so (a body its JSON functions refuse, an event failing their check, a
    gap) comes as a ``LogBatch``, to be checked event by event.

    On any other database: ``read_log_batches``."""
    if engine.dialect.name != "sqlite":
        yield from read_log_batches(engine, batch=batch, upto=upto)
        return
    last = upto if upto is not None else 2**62
    after = -(2**62)
    while True:
        raw = engine.raw_connection()
        conn: Any = raw.driver_connection
        factory = conn.text_factory
        try:
            cursor = raw.cursor()
            # One snapshot for every statement of a batch.
            cursor.execute("BEGIN")
            (found,) = cursor.execute(_NEXT, (after, last)).fetchone()
            if found is None:
                return
            # A range starts just before an event: a gap in the numbers is read past.
            start = int(found) - 1
            end = min(last, start + batch)
            try:
                conn.text_factory = bytes
                row = cursor.execute(_PACK, (start, end)).fetchone()
            except sqlite3.Error:
                row = None  # the database's JSON functions refuse a body
            finally:
                conn.text_factory = factory
        finally:
            raw.rollback()
            raw.close()
        packed = None if row is None else _packed(engine, start, row)
        if packed is None:
            yield from read_log_batches(engine, batch=batch, upto=end, after=start)
        else:
            yield packed
        after = end


def _packed(engine: Engine, start: int, row: tuple[Any, ...]) -> PackedBatch | None:
    """The batch ``_PACK`` read after ``start``, or None where it is to be checked event
    by event: an event the database finds failing a check, a gap in the numbers (unique
    numbers in (start, high], fewer than the range holds), or a body with a line break
    of its own."""
    count, high, failing, joined, links = row
    if failing or count != high - start or joined is None:
        return None
    bodies = joined.split(b"\n")
    if len(bodies) != count:
        return None
    return PackedBatch(start + 1, bodies, links, _unpacker(engine, start, high))


def _unpacker(engine: Engine, start: int, end: int) -> Callable[[], LogBatch]:
    def unpack() -> LogBatch:
        # A range of ``end - start`` numbers holds at most as many events: one batch.
        rows = read_log_batches(engine, batch=max(1, end - start), upto=end, after=start)
        return next(rows, LogBatch([], [], [], [], [], {}))

    return unpack
