"""What a governed read gives back: the media type, the body's chunks, the headers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from gateway.read.delivery import Delivery

log = logging.getLogger(__name__)


@dataclass
class ReadResult:
    media_type: str
    chunks: Iterator[bytes]
    headers: dict[str, str]
    # Small enough to build whole before sending it (at most BUFFERED_READ_ROWS rows).
    small: bool = False
    # A streamed answer's delivery: whoever sends the chunks reports to it and finishes it.
    delivery: Delivery | None = None


def close_quietly(chunks: Iterator[bytes]) -> None:
    """Close an answer's generator of chunks once it stops, sent or not (a finished one
    is left as it is). A failure in closing is only logged: the read already failed or
    was abandoned, and its sender records why."""
    close = getattr(chunks, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception:
        log.warning("closing an abandoned answer's chunks failed", exc_info=True)
