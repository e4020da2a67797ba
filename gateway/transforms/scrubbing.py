"""Scrubbing of personal data out of free text.

``scrub`` replaces what it finds with a typed placeholder: ``[EMAIL]``, ``[PHONE]``,
``[NATIONAL_ID]``, ``[BANK_CARD]``, ``[IP]`` and ``[NAME]``.

Structured kinds are found by ``gateway.transforms.pii``, other people's names (a doctor,
a relative) by ``gateway.transforms.names``. That work is done once per distinct text.
The row's own names (``gateway.transforms.row_names``) are per row, so that part runs
only on rows with a name and is memoized per (text, names) pair. Small batches (a page of
a few hundred rows) are scrubbed from Python lists, which costs less than a dozen Arrow
kernel calls, and may share a ``ScrubCache`` of recent results across reads; large
batches stay columnar.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from gateway.transforms.distinct import as_strings
from gateway.transforms.names import default_finder
from gateway.transforms.pii import (
    BANK_CARD,
    EMAIL,
    IP,
    NAME,
    NATIONAL_ID,
    PHONE,
    find_pii,
    is_luhn_valid,
    is_valid_national_id,
)
from gateway.transforms.row_names import RowNameScrubber, in_placeholder
from gateway.transforms.scrub_cache import CacheKey, ScrubCache

__all__ = [
    "BANK_CARD",
    "EMAIL",
    "IP",
    "NAME",
    "NATIONAL_ID",
    "PHONE",
    "SMALL_BATCH_ROWS",
    "ScrubCache",
    "find_pii",
    "is_luhn_valid",
    "is_valid_national_id",
    "scrub",
]


def _scrub_text(text: str, detect_names: bool = True) -> str:
    """What depends on the text alone: structured kinds, then names no column lists."""
    spans = find_pii(text)
    if spans:
        text = _replace(text, spans)
    if detect_names:
        names = default_finder().spans(text)
        if names:
            text = _replace(
                text, [(a, b, NAME) for a, b in names if not in_placeholder(text, a, b)]
            )
    return text


def _replace(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    parts: list[str] = []
    last = 0
    for start, end, placeholder in spans:
        parts.append(text[last:start])
        parts.append(placeholder)
        last = end
    parts.append(text[last:])
    return "".join(parts)


# Up to this many rows a batch is scrubbed from Python lists: a 100-row page would
# otherwise spend more in the fixed cost of the columnar path's Arrow calls than in
# scrubbing. Larger batches take the columnar path, which scrubs each distinct text once
# and leaves the cache alone (a big scan would only push out what repeated pages reuse).
SMALL_BATCH_ROWS = 2_048


def _names_key(names: Sequence[str | None]) -> tuple[str, ...]:
    """One row's names as the scrubber sees them: stripped, distinct, in a fixed order."""
    return tuple(sorted({n.strip() for n in names if n and n.strip()}))


def _scrub_rows(
    values: pa.Array,
    name_columns: Sequence[pa.Array],
    cache: ScrubCache | None,
    detect_names: bool,
) -> pa.Array:
    """The small-batch path: the same results as the columnar one, from Python lists.

    Rows are keyed by their names as they came, not by the normalized set of names:
    the result is a function of either, and the raw tuple costs nothing to build.
    """
    texts = values.to_pylist()
    keys: list[CacheKey]
    if name_columns:
        rows = zip(*(column.to_pylist() for column in name_columns), strict=True)
        keys = [(t, r) for t, r in zip(texts, rows, strict=True) if t is not None]
    else:
        keys = [(t, ()) for t in texts if t is not None]
    hits = cache.lookup(keys) if cache is not None else [None] * len(keys)
    structured: dict[str, str] = {}
    scrubbers: dict[tuple[str, ...], RowNameScrubber] = {}
    fresh: dict[CacheKey, str] = {}
    done: list[str] = []
    for key, hit in zip(keys, hits, strict=True):
        if hit is None:
            hit = fresh.get(key)
        if hit is None:
            text, row_names = key
            hit = structured.get(text)
            if hit is None:
                hit = structured[text] = _scrub_text(text, detect_names)
            names = _names_key(row_names)
            if names:
                scrubber = scrubbers.get(names)
                if scrubber is None:
                    scrubber = scrubbers[names] = RowNameScrubber(names)
                if scrubber:
                    hit = scrubber(hit)
            fresh[key] = hit
        done.append(hit)
    if cache is not None and fresh:
        cache.store(list(fresh.items()))
    if len(done) < len(texts):
        # Null texts stay null.
        filled = iter(done)
        return pa.array([None if t is None else next(filled) for t in texts], pa.string())
    return pa.array(done, pa.string())


def scrub(
    texts: pa.Array | pa.ChunkedArray,
    names: Sequence[pa.Array | pa.ChunkedArray] = (),
    *,
    cache: ScrubCache | None = None,
    detect_names: bool = True,
) -> pa.Array:
    """Replace personal data in free text with typed placeholders.

    ``names`` are columns aligned with ``texts`` (the row's ``name``, ``contact_name``...);
    each row's own names are scrubbed from that row's text. Other people's names are
    found by ``gateway.transforms.names`` unless ``detect_names`` is false (a cache is
    then not used: its entries hold the full scrub). Null texts stay null. A small batch
    reuses and fills ``cache`` when one is given.
    """
    values = as_strings(texts)
    name_columns = [as_strings(n) for n in names]
    for column in name_columns:
        if len(column) != len(values):
            raise ValueError(
                f"name column has {len(column)} rows, the text column has {len(values)}"
            )
    if len(values) <= SMALL_BATCH_ROWS:
        return _scrub_rows(values, name_columns, cache if detect_names else None, detect_names)

    return _scrub_columnar(values, name_columns, detect_names)


def _scrub_columnar(values: pa.Array, name_columns: list[pa.Array], detect_names: bool) -> pa.Array:
    """The large-batch path: each distinct text once, then the row's names per row."""
    encoded = pc.dictionary_encode(values)
    scrubbed = pa.array(
        [_scrub_text(v, detect_names) for v in encoded.dictionary.to_pylist()], pa.string()
    )
    result = pc.take(scrubbed, encoded.indices)
    if not name_columns:
        return result

    any_name = pc.is_valid(name_columns[0])
    for column in name_columns[1:]:
        any_name = pc.or_(any_name, pc.is_valid(column))
    needs_names = pc.and_(any_name, pc.is_valid(values))
    rows = pc.indices_nonzero(needs_names)
    if len(rows) == 0:
        return result

    return pc.replace_with_mask(
        result, needs_names, _with_row_names(encoded.indices, scrubbed, name_columns, rows)
    )


def _with_row_names(
    indices: pa.Array, scrubbed: pa.Array, name_columns: list[pa.Array], rows: pa.Array
) -> pa.Array:
    """The scrubbed texts of ``rows`` with each row's own names taken out as well."""
    row_texts = pc.take(indices, rows).to_pylist()
    row_names = [pc.take(column, rows).to_pylist() for column in name_columns]
    distinct_texts = scrubbed.to_pylist()
    scrubbers: dict[tuple[str, ...], RowNameScrubber] = {}
    memo: dict[tuple[int, tuple[str, ...]], str] = {}
    replaced: list[str] = []
    for index, *row in zip(row_texts, *row_names, strict=True):
        key = _names_key(row)
        done = memo.get((index, key))
        if done is None:
            scrubber = scrubbers.get(key)
            if scrubber is None:
                scrubber = scrubbers[key] = RowNameScrubber(key)
            text = distinct_texts[index]
            done = scrubber(text) if scrubber else text
            memo[(index, key)] = done
        replaced.append(done)
    return pa.array(replaced, pa.string())
