"""A streamed governed answer: produced only as the client takes it, and cut at the socket.

Three things run side by side while a large answer is delivered:

- the sender asks the read for its next chunks, about ``PIECE_BYTES`` of them (in a
  worker thread: the read does store I/O), only once the server has taken the ones
  before. uvicorn's ``send`` waits while its transport holds more than its high-water
  mark (flow control), and chunks are handed over in pieces of at most ``PIECE_BYTES``,
  so a slow client holds the read back instead of the server buffering the answer
  ahead of it. The answer counts as
  complete only once the kernel has sent its last byte;
- a watch asks the read every ``WATCH_INTERVAL_S`` whether its reader may still
  receive it (revoked, offboarded, suspended, in this process or any other sharing the
  state database), even while the sender is blocked on a client that does not read;
- a listener notices the client going away.

A read that must stop is cut at the socket: the connection is reset (``SO_LINGER`` 0),
which discards what the server still buffers, and no terminating chunk is sent, so the
client sees an incomplete response. The read's ``data.read`` event records the bytes
that left the server, their digest, and ``complete: false``.
"""

from __future__ import annotations

import fcntl
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Protocol

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.errors import as_gateway_error
from gateway.read.delivery import Delivery
from gateway.read.result import close_quietly

log = logging.getLogger(__name__)

# A piece is what one ``send`` hands the server: large enough that the event loop goes
# round once per several hundred kilobytes of a bulk answer rather than per 64 KiB, and
# small enough that what a stream holds ahead of a slow client stays bounded.
PIECE_BYTES = 1024 * 1024
WATCH_INTERVAL_S = 0.5
DRAIN_POLL_S = 0.02
# The scope extension under which the server (gateway.http.server) lends the socket.
SOCKET_EXTENSION = "kiteline.socket"
# Linux: the bytes of a TCP socket's send queue not yet transmitted (linux/sockios.h).
SIOCOUTQNSD = 0x894B

Stop = Callable[..., Awaitable[None]]


class SocketControl(Protocol):
    def unsent(self) -> int: ...

    def reset(self) -> None: ...


class GovernedStream(Response):
    def __init__(
        self,
        chunks: Iterator[bytes],
        *,
        delivery: Delivery,
        media_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)
        self._chunks = chunks
        self._delivery = delivery

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        control: SocketControl | None = scope.get("extensions", {}).get(SOCKET_EXTENSION)
        outcome: dict[str, Any] = {"complete": False, "reason": None}
        try:
            async with anyio.create_task_group() as group:

                async def stop(reason: str | None, *, complete: bool = False) -> None:
                    if outcome["reason"] is None and not outcome["complete"]:
                        outcome.update(complete=complete, reason=reason)
                    group.cancel_scope.cancel()

                group.start_soon(self._send_all, send, control, stop)
                group.start_soon(self._watch, stop)
                group.start_soon(self._listen, receive, stop)
        finally:
            with anyio.CancelScope(shield=True):
                await self._end(control, outcome)
        if not outcome["complete"] and control is None:
            # No terminating chunk: the server closes the connection, the client can tell.
            # (A connection the stream reset needs no telling: it is gone.)
            raise IncompleteAnswer(outcome["reason"] or "the answer was cut")

    async def _send_all(self, send: Send, control: SocketControl | None, stop: Stop) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            batched = _Batched(self._chunks)
            while chunks := await anyio.to_thread.run_sync(batched.next):
                for piece in _pieces(chunks):
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
                    self._delivery.handed_over(
                        piece,
                        unsent=control.unsent() if control else 0,
                        # The chunked encoding's size line and closing CRLF.
                        framing=(len(b"%x\r\n" % len(piece)), 2),
                    )
                    if (reason := self._delivery.cancelled()) is not None:
                        await stop(reason)
                        return
            await _drained(control)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception as exc:
            await stop(as_gateway_error(exc).detail)
            return
        await stop(None, complete=True)

    async def _watch(self, stop: Stop) -> None:
        while True:
            await anyio.sleep(WATCH_INTERVAL_S)
            reason = await anyio.to_thread.run_sync(self._delivery.stop_reason)
            if reason is not None:
                await stop(reason)
                return

    async def _listen(self, receive: Receive, stop: Stop) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                await stop("the client went away before the answer was complete")
                return

    async def _end(self, control: SocketControl | None, outcome: dict[str, Any]) -> None:
        complete = bool(outcome["complete"])
        unsent = 0
        if not complete and control is not None:
            unsent = control.unsent()
            control.reset()
        await anyio.to_thread.run_sync(close_quietly, self._chunks)
        await anyio.to_thread.run_sync(
            lambda: self._delivery.finish(
                complete=complete, reason=outcome["reason"], unsent=unsent
            )
        )


class IncompleteAnswer(Exception):
    """Raised to the server so it drops the connection without the closing chunk."""


class TransportSocket:
    """A connection's socket as the server lends it to the stream (see gateway.http.server)."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def unsent(self) -> int:
        """Bytes written but not yet sent to the client: the transport's buffer plus
        what the kernel has not yet transmitted (Linux ``SIOCOUTQNSD``; elsewhere 0)."""
        buffered = int(self._transport.get_write_buffer_size())
        sock = self._transport.get_extra_info("socket")
        if sock is None:
            return buffered
        try:
            queued = fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, b"\0\0\0\0")
        except OSError:
            return buffered
        return buffered + int(struct.unpack("i", queued)[0])

    def reset(self) -> None:
        """Drop the connection now, discarding what is unsent (a TCP reset)."""
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                log.debug("could not set SO_LINGER on a cut connection", exc_info=True)
        self._transport.abort()


async def _drained(control: SocketControl | None) -> None:
    """Wait until the kernel has sent every byte (it may hold megabytes for a slow
    client): only then is the answer complete, and until then it can be cut."""
    while control is not None and control.unsent() > 0:
        await anyio.sleep(DRAIN_POLL_S)


class _Batched:
    """The answer's chunks taken about ``PIECE_BYTES`` at a time: one thread hop for
    several small chunks, and the read stays at most a piece ahead. When the read fails
    after some chunks of a batch were made, those chunks still go out first and the
    failure comes with the next batch, so a cut answer ends where the store failed."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._failure: BaseException | None = None

    def next(self) -> list[bytes]:
        """The next chunks (empty at the end)."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        taken: list[bytes] = []
        size = 0
        try:
            while size < PIECE_BYTES and (chunk := next(self._chunks, None)) is not None:
                taken.append(chunk)
                size += len(chunk)
        except Exception as failure:
            if not taken:
                raise
            self._failure = failure
        return taken


def _pieces(chunks: list[bytes]) -> Iterator[bytes]:
    """Each chunk as is (no copy) when it fits a piece, else cut into pieces."""
    for chunk in chunks:
        if len(chunk) <= PIECE_BYTES:
            if chunk:
                yield chunk
            continue
        for start in range(0, len(chunk), PIECE_BYTES):
            yield chunk[start : start + PIECE_BYTES]
