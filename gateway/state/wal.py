"""Checkpoints of a SQLite state database's write-ahead log, off the request path.

In WAL mode a commit appends pages to the log; now and then the log must be copied back
into the database file (a checkpoint), which waits for the disk twice. Left to SQLite,
the checkpoint runs inside whichever commit pushes the log past 1,000 pages: steady
appends then stall one commit in a hundred for milliseconds, and with it the event loop
or read slot that made it (docs/performance.md has the measurement).

Here a thread of its own copies the log every ``interval_s`` (PASSIVE: it never waits
for readers or writers, and copies what it can). Under continuous writes it rarely finds
the log idle, and only an idle, fully copied log starts over from its beginning; so the
connections' own threshold stays, raised to ``AUTOCHECKPOINT_PAGES``, and the commit
that crosses it finds nearly everything copied already and pays for the rest: one
stall every ~10,000 pages instead of one every 1,000. It is also the backstop for
a process that runs no checkpointer (the command line, in-process tests).
"""

from __future__ import annotations

from sqlalchemy import Engine

from gateway.periodic import Periodic

# Pages (4 KiB each) the log may hold before a commit checkpoints it itself: about
# 40 MB, some seconds of appends at full speed.
AUTOCHECKPOINT_PAGES = 10_000
CHECKPOINT_INTERVAL_S = 0.5


def uses_wal(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")


class WalCheckpointer:
    """Checkpoints ``engine``'s log periodically while started; a no-op for PostgreSQL and
    in-memory databases."""

    def __init__(self, engine: Engine, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        self._engine = engine
        # A failed round is logged; the backstop threshold still bounds the log.
        self._timer = Periodic("kiteline-wal", interval_s, self.checkpoint)

    def start(self) -> None:
        if uses_wal(self._engine):
            self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def checkpoint(self) -> tuple[int, int]:
        """One PASSIVE checkpoint: (pages in the log, pages copied to the database)."""
        raw = self._engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                row = cursor.fetchone()
            finally:
                cursor.close()
        finally:
            raw.close()
        if row is None:
            raise RuntimeError("the checkpoint reported nothing")
        _busy, pages, copied = row
        return int(pages), int(copied)
