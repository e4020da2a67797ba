"""Where the next page of a suppressing read starts, known before its first byte.

A page read under k-suppression consumes an unknown number of source rows: suppressed
rows do not count towards its limit. Formats with a trailer carry the next page's
cursor after the rows; CSV has none, so its cursor must go in a header, before the
body. This counting pass scans the page's window once, keeping rows exactly as the
read will (``take_kept`` over the same decided scan), and names where the read will
stop. It releases nothing: no transform runs and no byte leaves.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from gateway.transforms.kanonymity import ClassIndex, take_kept


def consumed_by_page(
    batches: Iterator[pa.RecordBatch], suppress: ClassIndex, limit: int
) -> int | None:
    """Source rows a suppressing page of ``limit`` rows consumes, or None when no row
    follows it (the same rule as ``RowStream.transformed``, which puts the cursor in a
    closing chunk: a row past a full page proves a next one). Closes ``batches``."""
    try:
        more, consumed = _count(batches, suppress, limit)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()  # release the store cursor now, not when collected
    return consumed if more else None


def _count(batches: Iterator[pa.RecordBatch], suppress: ClassIndex, limit: int) -> tuple[bool, int]:
    rows = consumed = 0
    more = False
    for batch in batches:
        if rows >= limit:
            if batch.num_rows:
                more = True
                break
            continue
        kept, used, cut = take_kept(batch, suppress.kept(batch), limit - rows)
        more = more or cut
        consumed += used
        rows += kept.num_rows
        if more and rows >= limit:
            break
    return more, consumed
