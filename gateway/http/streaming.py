"""A streamed response that always closes the read behind it.

Starlette drives a synchronous body iterator from a worker thread and, when the client
goes away or the stream stops early, simply stops asking it for chunks: the iterator
is left suspended until the garbage collector finds it. A governed read's iterator
holds a store cursor (for PostgreSQL a pooled connection inside a transaction), so it
must be closed at once. :class:`GovernedStream` closes it when the response ends, for
whatever reason, in a worker thread (closing runs store I/O) and shielded from the
cancellation that a disconnect delivers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

log = logging.getLogger(__name__)


class GovernedStream(StreamingResponse):
    def __init__(
        self,
        chunks: Iterator[bytes],
        *,
        media_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(chunks, media_type=media_type, headers=headers)
        self._chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # The worker thread has returned from its last next() by now: anyio waits
            # for a thread call to finish before delivering a cancellation.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(close_quietly, self._chunks)


def close_quietly(chunks: Iterator[bytes]) -> None:
    """Close a generator of chunks; a finished one is left as it is."""
    close = getattr(chunks, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception:
        # The read already failed or was abandoned; the generator recorded why.
        log.warning("closing an abandoned response stream failed", exc_info=True)
