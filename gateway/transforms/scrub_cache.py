"""Recent scrubbing results, shared by every read in the process."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

# (text, the row's names as they came: nulls, blanks, duplicates and all)
CacheKey = tuple[str, tuple[str | None, ...]]


class ScrubCache:
    """Recent scrubbing results, keyed by the text and the names it was scrubbed against.

    A result depends on nothing else (not on the recipient, the dataset or the time), so
    one cache serves every read in the process: a page read again, by anyone, is not
    scrubbed again. The names are part of the key, so one row's names never reach
    another row's text. Bounded in entries and in characters held, least recently used
    first out; a text longer than ``max_text_chars`` is not kept at all.
    """

    def __init__(
        self,
        *,
        max_entries: int = 16_384,
        max_chars: int = 4_000_000,
        max_text_chars: int = 2_000,
    ) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.max_text_chars = max_text_chars
        self._entries: OrderedDict[CacheKey, str] = OrderedDict()
        self._chars = 0
        # Reads run on worker threads; one lock taken once per batch, not per row.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def chars(self) -> int:
        """Characters held, texts and results together."""
        return self._chars

    def lookup(self, keys: Sequence[CacheKey]) -> list[str | None]:
        """The cached result for each key, None where there is none."""
        entries = self._entries
        found: list[str | None] = []
        with self._lock:
            for key in keys:
                value = entries.get(key)
                if value is not None:
                    entries.move_to_end(key)
                found.append(value)
        return found

    def store(self, results: Sequence[tuple[CacheKey, str]]) -> None:
        entries = self._entries
        with self._lock:
            for key, value in results:
                if len(key[0]) > self.max_text_chars or key in entries:
                    continue
                entries[key] = value
                self._chars += len(key[0]) + len(value)
            while entries and (len(entries) > self.max_entries or self._chars > self.max_chars):
                (text, _names), value = entries.popitem(last=False)
                self._chars -= len(text) + len(value)
