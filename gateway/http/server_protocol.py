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
            self._in_head = True
            self._refused = False

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head, self._head_bytes = True, 0

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            in_head_before = self._in_head
            super().data_received(data)
            # Bytes of a chunk that completed the head are not counted: the body may
            # follow in the same chunk. A chunk that leaves the head open is all head.
            if in_head_before and self._in_head:
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self._refused = True
                    self.transport.write(_TOO_LARGE % (len(_BODY), _BODY))
                    self.transport.close()

        def send_400_response(self, msg: str) -> None:
            if not self._refused:
                super().send_400_response(msg)
