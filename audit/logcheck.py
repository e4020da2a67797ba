"""Whole-log verification: the hash chain, the Merkle leaves and signed checkpoints.

`chain.verify` proves that every event links to its predecessor; this module goes on
to recompute each event's RFC 6962 leaf hash and the tree over all of them, so that
the log can be compared with checkpoints signed earlier. A checkpoint covering more
events than the log holds means the newest events were deleted or the database was
rolled back to an older copy; a checkpoint whose root differs from the recomputed
root at its size means history was rewritten (a fork).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from audit.chain import GENESIS
from audit.checkpoints import Checkpoint
from audit.merkle import EMPTY_ROOT, TreeBuilder

# What a failed verification found; the CLI maps each to an exit code.
TAMPERED = "tampered"  # an event was edited, deleted, inserted or reordered
TRUNCATED = "truncated"  # the log is shorter than a checkpoint or its own head says
FORKED = "forked"  # a checkpoint's root disagrees with the log at its size


@dataclass(frozen=True, slots=True)
class LogRecord:
    seq: int
    body: bytes
    prev_hash: str
    hash: str
    leaf_hash: str | None
    # Searchable copies kept beside the body; they must agree with it.
    columns: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class LogReport:
    ok: bool
    events: int
    head: str
    root: bytes
    problem: str | None = None
    bad_seq: int | None = None
    finding: str | None = None
    checkpoints_checked: int = 0


@dataclass(frozen=True, slots=True)
class ExpectedHead:
    """What the log's own head record says: its size and the chain's last hash."""

    size: int
    chain_head: str


def verify_log(
    records: Iterable[LogRecord],
    *,
    checkpoints: Sequence[tuple[str, Checkpoint]] = (),
    head: ExpectedHead | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 50_000,
) -> LogReport:
    """Recompute chain, leaves and tree in sequence order; report the first problem.

    `checkpoints` are (label, checkpoint) pairs whose signatures the caller has
    already checked; the label names them in messages (a file, "stored #12"...).
    """
    pending = sorted(checkpoints, key=lambda item: item[1].tree_size)
    builder = TreeBuilder()
    prev = GENESIS
    count = 0
    checked = 0
    sha256 = hashlib.sha256
    loads = orjson.loads

    leaves: list[bytes] = []

    def failed(problem: str, seq: int | None, finding: str = TAMPERED) -> LogReport:
        builder.extend(leaves)
        leaves.clear()
        return LogReport(False, count, prev, builder.root(), problem, seq, finding, checked)

    # Empty-tree checkpoints are checked before the first event.
    while pending and pending[0][1].tree_size == 0:
        label, checkpoint = pending.pop(0)
        if checkpoint.root_hash != EMPTY_ROOT:
            return failed(f"checkpoint {label} claims a non-empty root for size 0", None, FORKED)
        checked += 1

    boundary = pending[0][1].tree_size if pending else -1
    for record in records:
        seq = record.seq
        expected = count + 1
        if seq != expected:
            what = "missing" if seq > expected else "duplicated or reordered"
            return failed(f"event {expected} is {what}", expected)
        body = record.body
        if record.prev_hash != prev:
            return failed(
                f"event {seq} does not link to its predecessor "
                "(an earlier event was changed or removed)",
                seq,
            )
        if sha256(bytes.fromhex(prev) + body).hexdigest() != record.hash:
            return failed(f"event {seq} was edited (its body no longer matches its hash)", seq)
        leaf = sha256(b"\x00" + body).digest()
        if record.leaf_hash != leaf.hex():
            return failed(f"event {seq}: its stored Merkle leaf hash is missing or edited", seq)
        try:
            event = loads(body)
        except orjson.JSONDecodeError:
            return failed(f"event {seq} is not valid JSON", seq)
        if not isinstance(event, dict) or event.get("seq") != seq:
            return failed(f"event {seq}: the signed body names another sequence number", seq)
        for column, value in record.columns.items():
            if event.get(column) != value:
                return failed(
                    f"event {seq}: column {column!r} was edited (it disagrees with the "
                    "hashed body)",
                    seq,
                )
        leaves.append(leaf)
        prev = record.hash
        count = expected
        if count == boundary or len(leaves) >= 4096:
            # Leaves go into the tree in chunks; a checkpoint's size is always a chunk end.
            builder.extend(leaves)
            leaves.clear()
        while pending and pending[0][1].tree_size == count:
            label, checkpoint = pending.pop(0)
            if builder.root() != checkpoint.root_hash:
                return failed(
                    f"checkpoint {label} signed a different root for the first {count} "
                    "events: the log was rewritten after it was signed (a fork)",
                    None,
                    FORKED,
                )
            checked += 1
            boundary = pending[0][1].tree_size if pending else -1
        if progress is not None and count % progress_every == 0:
            progress(count)

    builder.extend(leaves)
    leaves.clear()
    if progress is not None:
        progress(count)
    if pending:
        label, checkpoint = pending[-1]
        return failed(
            f"the log holds {count} events but checkpoint {label} covers "
            f"{checkpoint.tree_size}: events were deleted from the end, or the database "
            "was rolled back to an older copy",
            count + 1,
            TRUNCATED,
        )
    if head is not None:
        if head.size != count:
            finding = TRUNCATED if head.size > count else TAMPERED
            return failed(
                f"the log holds {count} events but its head record says {head.size}",
                count + 1,
                finding,
            )
        if head.chain_head != prev:
            return failed("the head record's chain hash does not match the last event", count)
    return LogReport(True, count, prev, builder.root(), checkpoints_checked=checked)
