"""The audit log read back for verification: every event, as columns of a batch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from typing import Any

from sqlalchemy import Engine

from audit import LogBatch


def read_log_batches(
    engine: Engine, *, batch: int = 20_000, upto: int | None = None
) -> Iterator[LogBatch]:
    """Every event in sequence order, as columns of ``batch`` events at a time."""
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
    after = -(2**62)
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
