"""Pseudonyms remembered across reads, per recipient, identifier domain and key version.

Keying a value (HMAC-SHA256) costs far more than looking it up, and the same recipient
reads the same identifiers again and again. The gateway owns one cache; each read of
one identifier domain uses the ``PseudonymTable`` of its (recipient, domain, key
version). The key version is part of the scope, so a rotation (``kiteline keys
rotate``) starts from empty tables, and one recipient's table is never consulted for
another's read. Bounded in entries, least recently used scopes evicted first; held in
memory only, never persisted and never logged.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from gateway.transforms.pseudonyms import PseudonymTable

Scope = tuple[str, str, int]  # (recipient, identifier domain, key version)


class PseudonymCache:
    """At most ``max_entries`` pseudonyms over all scopes; 0 keeps none."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._tables: OrderedDict[Scope, PseudonymTable] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Entries held over all scopes."""
        with self._lock:
            return sum(len(t) for t in self._tables.values())

    def table(self, *, recipient: str, domain: str, version: int) -> PseudonymTable:
        """The table of one scope, created empty when absent; marks it recently used."""
        scope = (recipient, domain, version)
        with self._lock:
            table = self._tables.get(scope)
            if table is None:
                table = PseudonymTable(admit=self._admit)
                self._tables[scope] = table
            self._tables.move_to_end(scope)
            return table

    def _admit(self, table: PseudonymTable, count: int) -> bool:
        """Whether ``table`` may keep ``count`` more entries; makes room by evicting the
        least recently used other scopes. A scope alone past the bound keeps what it
        has and remembers nothing more."""
        with self._lock:
            held = any(t is table for t in self._tables.values())
            if not held or len(table) + count > self.max_entries:
                # An evicted table still serves the read holding it, but grows no more.
                return False
            total = sum(len(t) for t in self._tables.values()) + count
            for scope in list(self._tables):
                if total <= self.max_entries:
                    break
                if self._tables[scope] is not table:
                    total -= len(self._tables.pop(scope))
            return total <= self.max_entries

    def clear(self) -> None:
        with self._lock:
            self._tables.clear()
