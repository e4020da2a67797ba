"""A bounded in-process cache of small data files held as Arrow tables.

Decoding a small Parquet or CSV file costs more than querying it, and the same few
files are read by every request. A cached table is keyed by the file's path, size and
modification time (nanoseconds), checked on every use, so a rewritten file is read
again on the next request; a file that changes while it is being read is not cached.

Values derived from a cached table (a column dictionary-encoded for bulk reads, columns
a scan asked to have derived) are kept with that table, counted in its size, and dropped
with it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 256 * 1024 * 1024

_Stamp = tuple[int, int]  # (st_mtime_ns, st_size)


@dataclass
class _Entry:
    stamp: _Stamp
    table: pa.Table
    nbytes: int
    derived: dict[Hashable, Any] = field(default_factory=dict)
    full: bool = False  # a derived value was refused: keep no more beside this table


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class ArrowFileCache:
    """Least-recently-used Arrow tables of files no larger than ``max_file_bytes``,
    at most ``max_total_bytes`` of them in memory."""

    def __init__(
        self, *, max_file_bytes: int = MAX_FILE_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES
    ) -> None:
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        # One table with what is derived from it: at most half the bound.
        self.max_entry_bytes = max_total_bytes // 2
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        # Files too big once decoded, by key, as they were then (bounded by the files
        # the configuration names).
        self._declined: dict[Hashable, _Stamp] = {}
        self._total = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(
        self,
        path: Path,
        variant: Hashable,
        load: Callable[[], pa.Table],
        *,
        seen: os.stat_result | None = None,
        decoded_bytes: Callable[[], int] | None = None,
    ) -> pa.Table | None:
        """The file's table, loaded with ``load`` when absent or stale; None when the
        file is too big (or missing, or changing): the caller then reads it directly.
        ``seen`` is what ``stat`` said of the file just now, if the caller asked.

        ``decoded_bytes`` estimates the table's size before it is loaded (a compressed
        Parquet file decodes to several times its bytes on disk): past the file bound,
        the file is declined without being loaded, and remembered as declined until it
        changes, so memory is never spent on decoding a table that cannot be kept."""
        before = _stamp(path) if seen is None else (seen.st_mtime_ns, seen.st_size)
        if before is None or before[1] > self.max_file_bytes:
            return None
        key = (str(path), variant)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.stamp == before:
                self._entries.move_to_end(key)
                return entry.table
            if self._declined.get(key) == before:
                return None
        if decoded_bytes is not None and decoded_bytes() > self.max_file_bytes:
            with self._lock:
                self._declined[key] = before
            return None
        table = load()
        if _stamp(path) != before:
            # Rewritten while we read it: use this result once, never keep it.
            log.debug("%s changed while being read; not cached", path)
            return table
        self._put(key, before, table)
        return table

    def derived_values(
        self, path: Path, variant: Hashable, table: pa.Table, names: Sequence[Hashable]
    ) -> list[Any]:
        """The values kept under ``names`` beside ``table`` (see ``derive``), None for
        each one not kept; one lock for all of them."""
        with self._lock:
            entry = self._entry_of(path, variant, table)
            if entry is None:
                return [None] * len(names)
            return [entry.derived.get(name) for name in names]

    def has_room(self, path: Path, variant: Hashable, table: pa.Table) -> bool:
        """Whether a value derived from ``table`` may still be kept beside it."""
        with self._lock:
            entry = self._entry_of(path, variant, table)
            return entry is not None and not entry.full and entry.nbytes < self.max_entry_bytes

    def derive(
        self,
        path: Path,
        variant: Hashable,
        table: pa.Table,
        name: Hashable,
        build: Callable[[pa.Table], Any],
    ) -> Any:
        """``build(table)``, kept beside ``table`` under ``name`` while ``table`` is the
        cached table of ``path`` (as returned by ``get``). The value must have
        ``nbytes``. Once the file changed or its table was evicted, the value is built
        for this caller and not kept: it is never paired with another version. Nor is
        it kept when the table and what is kept beside it would pass
        ``max_entry_bytes`` (half the bound): derived values never evict their own
        table, and after a refusal ``has_room`` says no more."""
        with self._lock:
            entry = self._entry_of(path, variant, table)
            if entry is not None and name in entry.derived:
                return entry.derived[name]
        value = build(table)
        with self._lock:
            entry = self._entry_of(path, variant, table)
            if entry is None:
                return value
            if name in entry.derived:  # built meanwhile by another read: keep one
                return entry.derived[name]
            if entry.nbytes + value.nbytes > self.max_entry_bytes:
                entry.full = True
                return value
            entry.derived[name] = value
            entry.nbytes += value.nbytes
            self._total += value.nbytes
            self._entries.move_to_end((str(path), variant))
            self._evict()
        return value

    def _entry_of(self, path: Path, variant: Hashable, table: pa.Table) -> _Entry | None:
        """The entry of ``path`` while ``table`` is its cached table (lock held)."""
        entry = self._entries.get((str(path), variant))
        return entry if entry is not None and entry.table is table else None

    def _put(self, key: Hashable, stamp: _Stamp, table: pa.Table) -> None:
        size = table.nbytes
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._total -= old.nbytes
            if size > self.max_total_bytes:
                return
            self._entries[key] = _Entry(stamp, table, size)
            self._total += size
            self._evict()

    def _evict(self) -> None:
        while self._total > self.max_total_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._total -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._declined.clear()
            self._total = 0
