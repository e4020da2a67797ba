"""What a governed read gives back: the media type, the body's chunks, the headers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class ReadResult:
    media_type: str
    chunks: Iterator[bytes]
    headers: dict[str, str]
    # Small enough to build whole before sending it (at most BUFFERED_READ_ROWS rows).
    small: bool = False
