"""What a streamed answer actually delivered, and the event that records it.

The HTTP wing hands each chunk to the server only when the client has taken the one
before (see ``gateway.http.streaming``), tells this object what it handed over and how
much of that still sits unsent in the server's buffers, asks it between chunks (and at
least every half second while the client is slow) whether the read may go on, and
finishes it once: the closing ``data.read`` event then names the bytes and rows that
reached the client, the SHA-256 of exactly those bytes, and ``complete: false`` when
the read was cut or the client went away.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Callable

from audit import AuditError
from connectors import Cancellation
from gateway.read.watch import ReadWatch

log = logging.getLogger(__name__)


class Delivery:
    def __init__(
        self,
        *,
        cancellation: Cancellation,
        watch: ReadWatch | None,
        record: Callable[..., None],
        settle: Callable[[int], None],
    ) -> None:
        self._cancellation = cancellation
        self._watch = watch
        self._record = record
        self._settle = settle
        self._hash = hashlib.sha256()
        # Pieces handed to the server but maybe not yet sent, oldest first, each with the
        # bytes the server frames it with before and after (a chunk's size line and CRLF).
        self._pending: deque[tuple[memoryview, int, int]] = deque()
        self._pending_bytes = 0
        self._pending_wire = 0
        self.handed = 0
        # (bytes at the end of a chunk, rows the answer held at that point), as produced.
        self._boundaries: deque[tuple[int, int]] = deque()
        self._produced = 0
        self.rows = 0
        self.finished = False

    # -- the producer (the read's generator) ---------------------------------------

    def produced(self, chunk: bytes, rows: int) -> None:
        """The answer's next chunk ends after ``rows`` rows."""
        self._produced += len(chunk)
        self._boundaries.append((self._produced, rows))

    # -- the sender (the HTTP wing) ---------------------------------------------------

    def handed_over(
        self, piece: bytes, *, unsent: int = 0, framing: tuple[int, int] = (0, 0)
    ) -> None:
        """``piece`` went to the server, framed by ``framing`` bytes (before, after) on
        the wire; the server still holds ``unsent`` bytes of the wire unsent."""
        self.handed += len(piece)
        self._pending.append((memoryview(piece), *framing))
        self._pending_bytes += len(piece)
        self._pending_wire += len(piece) + sum(framing)
        self._confirm(unsent)

    def cancelled(self) -> str | None:
        """Why the read was cancelled in this process (no state query), or None."""
        if self._cancellation.cancelled:
            return "the read was cancelled: its reader was offboarded or suspended"
        return None

    def stop_reason(self) -> str | None:
        """Why the read must stop now (revoked, offboarded, suspended), or None."""
        if (cancelled := self.cancelled()) is not None:
            return cancelled
        reason = self._watch.check() if self._watch is not None else None
        if reason is not None:
            self._cancellation.cancel()
        return reason

    def finish(self, *, complete: bool, reason: str | None = None, unsent: int = 0) -> None:
        """Record the read once: what reached the client, and whether that was all."""
        if self.finished:
            return
        self.finished = True
        self._confirm(0 if complete else unsent)
        try:
            self._settle(self.rows)
        except Exception:
            log.exception("could not settle the row budget of a read")
        try:
            self._record(
                complete=complete,
                rows=self.rows,
                bytes_delivered=self.delivered,
                digest="sha256:" + self._hash.hexdigest(),
                reasons=(reason,) if reason else (),
            )
        except AuditError:
            log.error("could not record the end of a read")
            if complete:
                raise

    @property
    def delivered(self) -> int:
        return self.handed - self._pending_bytes

    def _confirm(self, unsent: int) -> None:
        # Everything handed over but the last ``unsent`` bytes of the wire has been sent.
        while self._pending and self._pending_wire - _wire(self._pending[0]) >= unsent:
            view, before, after = self._pending.popleft()
            self._pending_bytes -= len(view)
            self._pending_wire -= len(view) + before + after
            self._hash.update(view)
        if self._pending and self._pending_wire > unsent:
            view, before, after = self._pending[0]
            sent = min(len(view), max(0, self._pending_wire - unsent - before))
            self._hash.update(view[:sent])
            self._pending[0] = (view[sent:], 0, after)
            self._pending_bytes -= sent
            self._pending_wire -= sent + before
        delivered = self.delivered
        while self._boundaries and self._boundaries[0][0] <= delivered:
            self.rows = self._boundaries.popleft()[1]


def _wire(pending: tuple[memoryview, int, int]) -> int:
    view, before, after = pending
    return len(view) + before + after
