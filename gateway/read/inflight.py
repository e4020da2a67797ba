"""Reads under way, by principal and org, so offboarding and suspension can cut them off.

A read registers its cancellation when it starts and removes it when it ends; the
stream loop checks the flag between batches and the connectors check it while
scanning, so a cancelled read stops at its next batch.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

from connectors import Cancellation


@dataclass(frozen=True, slots=True)
class _Read:
    principal: str
    org: str | None
    cancellation: Cancellation


class InflightReads:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reads: dict[int, _Read] = {}
        self._ids = itertools.count(1)

    def add(self, principal: str, org: str | None, cancellation: Cancellation) -> int:
        with self._lock:
            handle = next(self._ids)
            self._reads[handle] = _Read(principal, org, cancellation)
            return handle

    def discard(self, handle: int) -> None:
        with self._lock:
            self._reads.pop(handle, None)

    def cancel(self, *, principal: str | None = None, org: str | None = None) -> int:
        """Cancel every read of ``principal`` or of any member of ``org``; returns how many."""
        with self._lock:
            hits = [
                r
                for r in self._reads.values()
                if (principal is not None and r.principal == principal)
                or (org is not None and r.org == org)
            ]
        for read in hits:
            read.cancellation.cancel()
        return len(hits)

    def __len__(self) -> int:
        with self._lock:
            return len(self._reads)
