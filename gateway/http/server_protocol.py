"""uvicorn's HTTP protocol with a bound on the request head (request line and headers).

uvicorn bounds the head only for its h11 parser; with httptools, a client could send
headers without end and the server would buffer them. This protocol counts the bytes
received while a request's head is incomplete and answers 431 past the bound.
"""

from __future__ import annotations

from typing import Any

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is a dependency; h11 bounds itself
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

MAX_HEAD_BYTES = 32 * 1024

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/problem+json\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)
_BODY = (
    b'{"type":"urn:kiteline:problem:headers-too-large","title":"Request header fields '
    b'too large","status":431,"detail":"the request line and headers exceed %d bytes"}'
    % MAX_HEAD_BYTES
)


if HttpToolsProtocol is not None:

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_bytes = 0
            self._in_head = False
            self._refused = False

        def on_message_begin(self) -> None:
            # A head starts with its request's first byte and ends when its headers do;
            # nothing in between is body, whatever the connection did before.
            super().on_message_begin()
            self._in_head, self._head_bytes = True, 0

        def on_headers_complete(self) -> None:
            self._in_head = False
            # A head that arrived in the same chunk as its end is measured here.
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > MAX_HEAD_BYTES:
                self._refuse()
                return
            super().on_headers_complete()

        def _refuse(self) -> None:
            self._refused = True
            self.transport.write(_TOO_LARGE % (len(_BODY), _BODY))
            self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            super().data_received(data)
            # A chunk that leaves a head open is counted whole (it may also end an
            # earlier request); one that completes its head is not: a body may follow.
            if self._in_head:
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self._refuse()

        def send_400_response(self, msg: str) -> None:
            if not self._refused:
                super().send_400_response(msg)
