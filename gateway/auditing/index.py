"""The audit log's search index: ``audit_index``, filled in batches after the append.

An index on the event table would cost every append one more page written at commit,
a sizable share of a small governed read (docs/performance.md). The searchable fields
are copied to ``audit_index`` instead, up to ``BATCH`` events per transaction, by a
thread of the server every second and by every search before it runs: a search sees
every event appended before it began. The copy holds no body; a search joins the log
for it. ``verify`` checks the copy against the log (``first_mismatch``), since a search
that misses an event hides it, and ``kiteline audit reindex`` rebuilds it.
"""

from __future__ import annotations

from sqlalchemy import Engine, func, or_, select, text

from gateway.periodic import Periodic
from gateway.state.models import AuditEvent, AuditIndexEntry

COLUMNS = (
    "seq",
    "ts",
    "request_id",
    "actor",
    "actor_kind",
    "actor_org",
    "action",
    "dataset",
    "module",
    "decision",
)
# A batch holds the write lock while it is indexed. Smaller, more frequent batches
# measured worse (docs/performance.md), as every commit from another connection also
# empties the appending connection's page cache.
BATCH = 1000
INTERVAL_S = 1.0

_NAMES = ", ".join(COLUMNS)
# One statement: it takes the write lock before it reads where the copy ends, so two
# processes catching up at once never copy an event twice (the second finds it done).
_CATCH_UP = text(
    f"INSERT INTO audit_index ({_NAMES}) SELECT {_NAMES} FROM audit_events "
    "WHERE seq > (SELECT COALESCE(MAX(seq), 0) FROM audit_index) ORDER BY seq LIMIT :batch "
    "ON CONFLICT (seq) DO NOTHING"
)
_INDEXED_UPTO = text("SELECT COALESCE(MAX(seq), 0) FROM audit_index")
_LOGGED_UPTO = text("SELECT COALESCE(MAX(seq), 0) FROM audit_events")


def catch_up(engine: Engine, *, batch: int = BATCH) -> int:
    """Index every event logged when called; how many this call copied."""
    with engine.connect() as conn:
        target = int(conn.execute(_LOGGED_UPTO).scalar_one())
    copied = 0
    indexed = -1
    while True:
        with engine.begin() as conn:
            copied += max(conn.execute(_CATCH_UP, {"batch": batch}).rowcount, 0)
            now = int(conn.execute(_INDEXED_UPTO).scalar_one())
        # No progress means the events up to the target are gone (verify reports it).
        if now >= target or now == indexed:
            return copied
        indexed = now


def rebuild(engine: Engine) -> int:
    """Copy the whole log again, as after ``verify`` found the index wrong; how many
    events it indexed. Searches meanwhile copy what they need first."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_index"))
    return catch_up(engine)


def first_mismatch(engine: Engine) -> int | None:
    """The first event the index leaves out or misstates, up to where it ends."""
    events, index = AuditEvent.__table__, AuditIndexEntry.__table__
    differs = [index.c[name].is_distinct_from(events.c[name]) for name in COLUMNS[1:]]
    query = (
        select(func.min(events.c.seq))
        .select_from(events.outerjoin(index, index.c.seq == events.c.seq))
        .where(
            events.c.seq <= select(func.coalesce(func.max(index.c.seq), 0)).scalar_subquery(),
            or_(index.c.seq.is_(None), *differs),
        )
    )
    with engine.connect() as conn:
        found = conn.execute(query).scalar()
    return None if found is None else int(found)


class AuditIndexer(Periodic):
    """Keeps ``audit_index`` close behind the log while the server runs, so that a
    search has little to copy first."""

    def __init__(self, engine: Engine, interval_s: float = INTERVAL_S) -> None:
        super().__init__("kiteline-audit-index", interval_s, self.run_once)
        self._engine = engine

    def run_once(self) -> int:
        return catch_up(self._engine)
