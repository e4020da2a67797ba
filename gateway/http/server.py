"""The HTTP server's protocol, lending each request the connection it arrived on.

ASGI has no way for an application to reset a connection or to ask how much of what
it sent is still buffered. A governed stream needs both (see ``streaming``), so
``kiteline serve`` runs uvicorn with this protocol, which puts a small handle on the
connection's socket into each request's scope extensions.
"""

from __future__ import annotations

from typing import Any

from gateway.http.server_protocol import MAX_HEAD_BYTES, BoundedHttpToolsProtocol
from gateway.http.streaming import SOCKET_EXTENSION, TransportSocket


def uvicorn_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``: this protocol, and the head bound for h11."""
    return {"h11_max_incomplete_event_size": MAX_HEAD_BYTES, "http": GovernedHttpProtocol}


class GovernedHttpProtocol(BoundedHttpToolsProtocol):
    """Bounded request heads (``server_protocol``), and the socket lent to each request."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        extensions: dict[str, Any] = {SOCKET_EXTENSION: TransportSocket(self.transport)}
        self.scope["extensions"] = extensions
