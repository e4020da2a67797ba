"""A one-shot wake-up for a caller waiting on the audit log's group commit.

Each append waits for one of these, and the leader sets one per event it wrote, so
their cost is paid per event: ``threading.Event`` builds a condition and a lock and
runs its notification in Python; this is one lock, held until set.
"""

from __future__ import annotations

import threading


class Wakeup:
    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        """Wake the waiter, now or whenever it waits; setting again does nothing. Callers
        never set one concurrently (the log sets one under its queue or writer lock)."""
        if not self._set:
            self._set = True
            self._lock.release()

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float) -> bool:
        """Whether it was set within ``timeout`` seconds; once set, it stays set."""
        if self._set:
            return True
        if self._lock.acquire(timeout=max(0.0, timeout)):
            self._lock.release()  # for a second wait
            return True
        return False
