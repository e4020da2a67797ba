"""One deadline per request for every wait on the state database.

Each wait has its own bound (a SQLite lock held elsewhere, a PostgreSQL lock, an audit
append), but one request waits several times in turn: for its key, its row budget, its
records. The edge sets a deadline when the request arrives; every wait on its path is
then bounded by what is left of it as well as by its own bound, so a request that
cannot reach the database answers 503 within the configured timeout and a small
margin, not within the sum of its waits.

The deadline lives in a context variable, which worker threads started through anyio
inherit. It is a mutable holder, so that the edge can lift it once the answer starts:
what a streamed answer records at its end is not held to the time its first byte had.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Even past the deadline a wait gets this long: a lock held for a moment by another
# request of this process is not an unavailable database.
MIN_WAIT_S = 0.05
# A connection's own bound is left as it is when it is at most this much longer than the
# wait wanted (so a fast request pays for no statement that changes it) ...
_OVER_S = 0.05
# ... or at most this much shorter (set by a request near its deadline).
_UNDER_S = 0.25


@dataclass(slots=True)
class Deadline:
    at: float | None  # time.monotonic(); None once lifted

    def lift(self) -> None:
        self.at = None


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "kiteline_state_deadline", default=None
)


@contextlib.contextmanager
def request_deadline(seconds: float) -> Iterator[Deadline]:
    """Bound the state waits of the code run inside by ``seconds`` from now, together."""
    deadline = Deadline(time.monotonic() + seconds)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def remaining(bound_s: float) -> float:
    """How long the next wait may take: its own ``bound_s``, or what is left of the
    request's deadline if that is shorter (never less than ``MIN_WAIT_S``)."""
    deadline = _current.get()
    if deadline is None or deadline.at is None:
        return bound_s
    return max(MIN_WAIT_S, min(bound_s, deadline.at - time.monotonic()))


def bound_connection(dbapi_connection: Any, info: dict[str, Any], wanted: float) -> None:
    """Set a driver connection's lock wait to ``wanted`` seconds before it is used:
    SQLite's ``busy_timeout``, PostgreSQL's ``lock_timeout``. ``info`` is the pooled
    connection's own dictionary, which remembers the value last set."""
    current = info.get("lock_wait_s")
    if current is not None and wanted - _UNDER_S <= current <= wanted + _OVER_S:
        return
    milliseconds = max(1, int(wanted * 1000))
    cursor = dbapi_connection.cursor()
    try:
        if _is_sqlite(dbapi_connection):
            cursor.execute(f"PRAGMA busy_timeout = {milliseconds}")
        else:
            cursor.execute(f"SET lock_timeout = {milliseconds}")
            # A setting made in a transaction is undone with it: keep it for the session.
            dbapi_connection.commit()
    finally:
        cursor.close()
    info["lock_wait_s"] = wanted


def _is_sqlite(dbapi_connection: Any) -> bool:
    return type(dbapi_connection).__module__.startswith("sqlite3")
