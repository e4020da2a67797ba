"""Checkpoints of a SQLite state database's write-ahead log, off the request path.

In WAL mode a commit appends pages to the log; now and then the log must be copied back
into the database file (a checkpoint), which waits for the disk twice. Left to SQLite,
the checkpoint runs inside whichever commit pushes the log past its threshold: steady
appends then stall one commit in a hundred for milliseconds, and with it the event loop
or read slot that made it (measured: mean commit 173 us, median 46 us; checkpoints were
69% of commit time).

Here a thread of its own checkpoints the log every ``interval_s``, and commits only
append. The connection-level threshold stays, raised (``AUTOCHECKPOINT_PAGES``), as a
backstop for a process that runs no checkpointer or a checkpointer that falls behind.
PASSIVE checkpoints never wait for readers or writers: they copy what they can, and the
next one copies the rest.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

log = logging.getLogger(__name__)

# Pages (4 KiB each) the log may hold before a commit checkpoints it itself: about
# 40 MB, some seconds of appends at full speed; the checkpointer keeps it far below.
AUTOCHECKPOINT_PAGES = 10_000
CHECKPOINT_INTERVAL_S = 0.5


def uses_wal(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")


class WalCheckpointer:
    """Checkpoints ``engine``'s log periodically while started; a no-op for PostgreSQL and
    in-memory databases."""

    def __init__(self, engine: Engine, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        self._engine = engine
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not uses_wal(self._engine) or self._interval_s <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="kiteline-wal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

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

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.checkpoint()
            except Exception:
                # The backstop threshold still bounds the log; the next round retries.
                log.exception("write-ahead log checkpoint failed")
