"""The SHA-256 of an answer, computed beside the work that produces it.

Every read's ``data.read`` event records the digest of the bytes sent. For a bulk read
hashing is a sizable share of the work (docs/performance.md), and hashlib releases
the GIL while it hashes a large buffer, so a large answer is hashed on a thread of its
own while the next chunk is transformed and encoded. Small answers are hashed inline:
a thread would cost more than it saves.
"""

from __future__ import annotations

import hashlib
import queue
import threading

# Bytes hashed inline before the answer counts as large and moves to its own thread.
INLINE_BYTES = 1 << 20


class AnswerDigest:
    """Feed chunks in order with ``update``; ``hexdigest`` waits for the last one.

    Not thread-safe: one producer per digest, as a response has."""

    def __init__(self, inline_bytes: int = INLINE_BYTES) -> None:
        self._hash = hashlib.sha256()
        self._inline_left = inline_bytes
        self._chunks: queue.SimpleQueue[bytes | None] | None = None
        self._thread: threading.Thread | None = None

    def update(self, chunk: bytes) -> None:
        if self._chunks is not None:
            self._chunks.put(chunk)
            return
        self._inline_left -= len(chunk)
        if self._inline_left >= 0:
            self._hash.update(chunk)
            return
        # From here on every chunk goes through the queue, so the order is kept.
        self._chunks = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._drain, name="answer-digest", daemon=True)
        self._thread.start()
        self._chunks.put(chunk)

    def _drain(self) -> None:
        assert self._chunks is not None
        while (chunk := self._chunks.get()) is not None:
            self._hash.update(chunk)

    def hexdigest(self) -> str:
        self.close()
        return self._hash.hexdigest()

    def close(self) -> None:
        """Stop the hashing thread, if any, once it has hashed what it was given."""
        if self._thread is not None and self._chunks is not None:
            self._chunks.put(None)
            self._thread.join()
            self._thread = None
