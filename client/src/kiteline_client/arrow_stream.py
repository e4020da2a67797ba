"""An Arrow IPC answer decoded while its bytes arrive, without joining the body first.

``pyarrow.ipc.open_stream`` reads from a file-like object; this one serves its reads
from the response's chunks as they come. A read that falls inside one chunk is a view
of it (no copy); only a message that spans chunks is joined. Decoding thus overlaps the
transfer, and the whole body never sits in memory as one more copy of the page.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import httpx
import pyarrow as pa

NEXT_CURSOR = b"kiteline.next_cursor"


class ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks; ``consumed`` counts bytes."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._buffer = memoryview(b"")
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> memoryview:
        if size is None or size < 0:
            rest = b"".join([self._buffer, *self._chunks])
            self._buffer = memoryview(b"")
            self.consumed += len(rest)
            return memoryview(rest)
        if len(self._buffer) < size:
            parts, have = [self._buffer], len(self._buffer)
            for chunk in self._chunks:
                parts.append(memoryview(chunk))
                have += len(chunk)
                if have >= size:
                    break
            self._buffer = parts[0] if len(parts) == 1 else memoryview(b"".join(parts))
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        self.consumed += len(out)
        return out

    def drain(self) -> None:
        # Reading the body to its end hands the connection back to the pool for the
        # next page; one left unread would be closed.
        self.consumed += len(self._buffer) + sum(len(chunk) for chunk in self._chunks)
        self._buffer = memoryview(b"")


@dataclass
class Page:
    """One decoded answer: its batches (empty ones dropped), the cursor its last batch
    named, the bytes it took and the response's headers."""

    schema: pa.Schema
    batches: list[pa.RecordBatch]
    cursor: str | None
    nbytes: int
    headers: Mapping[str, str]


def read_page(response: httpx.Response) -> Page:
    """Decode a streamed Arrow answer (``pyarrow.ArrowInvalid`` if it broke off)."""
    body = ChunkReader(response.iter_bytes())
    reader = pa.ipc.open_stream(body)
    batches, cursor = [], None
    while True:
        try:
            batch, metadata = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            break
        if metadata is not None and NEXT_CURSOR in metadata:
            cursor = metadata[NEXT_CURSOR].decode()
        if batch.num_rows:
            batches.append(batch)
    body.drain()
    return Page(reader.schema, batches, cursor, body.consumed, response.headers)
