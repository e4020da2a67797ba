"""Columns derived from a cached table (``Scan.derived``), built block by block.

A derivation is computed over fixed blocks of the table's rows, on the first scan that
reaches each block, and kept beside the table in the file cache: a page at the start
of a big file pays for one block, not for the whole file. Once the cache keeps no more
beside a table (see ``ArrowFileCache.has_room``), blocks are no longer built.

On the event loop a block is never built: the first batch of a scan declines to a
worker thread instead (so the next read finds it built), and a later batch simply
comes without that column, which the caller then computes itself, as the hint
contract allows.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from connectors.base import ConnectorError, Derived
from connectors.file_cache import ArrowFileCache
from connectors.inline import decline_inline, is_inline

BLOCK_ROWS = 8_192


@dataclass(eq=False)
class Deriver:
    """The derived columns of one scan over one cached table."""

    cache: ArrowFileCache
    path: Path
    variant: Hashable
    table: pa.Table
    wanted: Sequence[Derived]
    location: str
    _first: bool = field(default=True, init=False)

    def columns(self, start: int, rows: int) -> list[tuple[str, pa.Array]]:
        """Each derived column's values for rows [start, start + rows) of the table;
        on the event loop, without the columns whose blocks are not built yet."""
        first, self._first = self._first, False
        if rows <= 0:
            return []
        blocks = range(start // BLOCK_ROWS, (start + rows - 1) // BLOCK_ROWS + 1)
        names = [("derived", wanted.key, block) for wanted in self.wanted for block in blocks]
        kept = iter(self.cache.derived_values(self.path, self.variant, self.table, names))
        found = []
        for wanted in self.wanted:
            parts = []
            for block in blocks:
                part = next(kept)
                if part is None:
                    part = self._build(wanted, block, may_decline=first)
                if part is not None:
                    parts.append(part)
            if len(parts) < len(blocks):
                continue
            whole = parts[0] if len(parts) == 1 else pa.concat_arrays(parts)
            found.append((wanted.name, whole.slice(start - blocks[0] * BLOCK_ROWS, rows)))
        return found

    def _build(self, wanted: Derived, block: int, *, may_decline: bool) -> pa.Array | None:
        if not self.cache.has_room(self.path, self.variant, self.table):
            return None  # the caller computes it, as for any store
        if is_inline():
            if may_decline:
                decline_inline(f"{wanted.name!r} of {self.location} is not derived yet")
            return None
        rows = self.table.slice(block * BLOCK_ROWS, BLOCK_ROWS)
        name = ("derived", wanted.key, block)
        return self.cache.derive(
            self.path, self.variant, self.table, name, lambda _: _built(wanted, rows)
        )


def _built(wanted: Derived, rows: pa.Table) -> pa.Array:
    column = wanted.build(rows)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if len(column) != rows.num_rows:
        raise ConnectorError(
            f"derived column {wanted.name!r} has {len(column)} rows, not {rows.num_rows}"
        )
    return column
