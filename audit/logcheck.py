"""Whole-log verification: the hash chain, the Merkle leaves and signed checkpoints.

`chain.verify` proves that every event links to its predecessor; this module goes on
to recompute each event's RFC 6962 leaf hash and the tree over all of them, so that
the log can be compared with checkpoints signed earlier. A checkpoint covering more
events than the log holds means the newest events were deleted or the database was
rolled back to an older copy; a checkpoint whose root differs from the recomputed
root at its size means history was rewritten (a fork).

The log also vouches for the checkpoints themselves: the gateway records each one it
signs as a `checkpoint.signed` event naming its size and root, so a signed checkpoint
deleted from the state database is missed by name (`CHECKPOINT_MISSING`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from audit.chain import GENESIS
from audit.checkpoints import Checkpoint
from audit.merkle import EMPTY_ROOT, TreeBuilder

_PARSED_AT_ONCE = 256

# What a failed verification found; the CLI maps each to an exit code.
TAMPERED = "tampered"  # an event was edited, deleted, inserted or reordered
TRUNCATED = "truncated"  # the log is shorter than a checkpoint or its own head says
FORKED = "forked"  # a checkpoint's root disagrees with the log at its size
CHECKPOINT_MISSING = "checkpoint-missing"  # the log records a checkpoint nobody showed

# The action of the event that records a signed checkpoint (fields `tree_size`, `root`).
CHECKPOINT_SIGNED = "checkpoint.signed"
# Canonical JSON has sorted keys and no blanks: a body of that action holds these bytes.
_SIGNED_MARK = b'"action":"checkpoint.signed"'
# The hex of an event's three hashes, end to end.
_LINK = 3 * 64


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
class LogBatch:
    """Consecutive events as columns: the fields of `LogRecord`, one list per field,
    so that a batch is checked with one pass per check instead of one per event."""

    seqs: list[int]
    bodies: list[bytes]
    prev_hashes: list[str]
    hashes: list[str]
    leaf_hashes: list[str | None]
    columns: Mapping[str, list[Any]]

    def __len__(self) -> int:
        return len(self.seqs)

    def records(self) -> Iterator[LogRecord]:
        names = list(self.columns)
        values = [self.columns[name] for name in names]
        for i, seq in enumerate(self.seqs):
            yield LogRecord(
                seq,
                self.bodies[i],
                self.prev_hashes[i],
                self.hashes[i],
                self.leaf_hashes[i],
                {name: column[i] for name, column in zip(names, values, strict=True)},
            )

    def slice(self, start: int, end: int) -> LogBatch:
        return LogBatch(
            self.seqs[start:end],
            self.bodies[start:end],
            self.prev_hashes[start:end],
            self.hashes[start:end],
            self.leaf_hashes[start:end],
            {name: column[start:end] for name, column in self.columns.items()},
        )


@dataclass(frozen=True, slots=True)
class PackedBatch:
    """Consecutive events packed by the database for a bulk check, with fewer Python
    objects than `LogBatch`: the events' bodies, and one string of their hashes.

    The events' numbers run without a gap from `first`, and the database found every
    one passing the checks of `check_record` it can make itself: its hash columns are
    text of 64 characters, and its body holds the event's own number and every
    searchable column's value. `links` is every event's `prev_hash`, `hash` and
    `leaf_hash`, end to end, in order. When a check of `_packed_intact` fails,
    `unpack()` gives the same events as a `LogBatch` and they are checked event by
    event, so the first problem is named exactly as without packing.
    """

    first: int
    bodies: list[bytes]
    links: bytes
    unpack: Callable[[], LogBatch]

    def __len__(self) -> int:
        return len(self.bodies)

    def slice(self, start: int, end: int) -> PackedBatch:
        whole = self.unpack
        return PackedBatch(
            self.first + start,
            self.bodies[start:end],
            self.links[_LINK * start : _LINK * end],
            lambda: whole().slice(start, end),
        )


def batches_of(records: Iterable[LogRecord], size: int = 4096) -> Iterator[LogBatch]:
    """`records` regrouped as batches; a record whose searchable columns differ from
    its predecessor's starts a new batch."""
    pending: list[LogRecord] = []
    names: tuple[str, ...] = ()
    for record in records:
        own = tuple(record.columns)
        if pending and (len(pending) >= size or own != names):
            yield _batch(pending)
            pending = []
        names = own
        pending.append(record)
    if pending:
        yield _batch(pending)


def _batch(records: list[LogRecord]) -> LogBatch:
    names = list(records[0].columns)
    return LogBatch(
        [r.seq for r in records],
        [r.body for r in records],
        [r.prev_hash for r in records],
        [r.hash for r in records],
        [r.leaf_hash for r in records],
        {name: [r.columns[name] for r in records] for name in names},
    )


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
    # The checkpoints the log records as signed: (tree size, event that records it).
    recorded: tuple[tuple[int, int], ...] = ()


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
    already checked; the label names them in messages (a file, "stored #12"...). Every
    checkpoint the log records as signed must be among them.
    """
    return verify_log_batches(
        batches_of(records),
        checkpoints=checkpoints,
        head=head,
        progress=progress,
        progress_every=progress_every,
    )


def verify_log_batches(
    batches: Iterable[LogBatch | PackedBatch],
    *,
    checkpoints: Sequence[tuple[str, Checkpoint]] = (),
    head: ExpectedHead | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 50_000,
) -> LogReport:
    """`verify_log` over events already grouped in batches (as a database hands them
    out, or packed by it): the same checks and the same first problem reported."""
    verifier = _Verifier(checkpoints, progress, progress_every)
    report = verifier.start()
    if report is not None:
        return report
    for batch in batches:
        report = verifier.check_batch(batch)
        if report is not None:
            return report
    return verifier.finish(head)


class _Verifier:
    """The state of one verification: the chain's last hash, the tree so far, and the
    checkpoints still to compare."""

    def __init__(
        self,
        checkpoints: Sequence[tuple[str, Checkpoint]],
        progress: Callable[[int], None] | None,
        progress_every: int,
    ) -> None:
        self.pending = sorted(checkpoints, key=lambda item: item[1].tree_size)
        self.given = {cp.tree_size: cp.root_hash.hex() for _, cp in checkpoints}
        # (tree size, root, seq) of each `checkpoint.signed` event met so far.
        self.recorded: list[tuple[int, str, int]] = []
        self.builder = TreeBuilder()
        self.prev = GENESIS
        self.count = 0
        self.checked = 0
        self.leaves: list[bytes] = []
        self.progress = progress
        self.progress_every = progress_every
        self.boundary = -1

    def failed(self, problem: str, seq: int | None, finding: str = TAMPERED) -> LogReport:
        self.flush()
        return LogReport(
            False, self.count, self.prev, self.builder.root(), problem, seq, finding, self.checked
        )

    def flush(self) -> None:
        self.builder.extend(self.leaves)
        self.leaves.clear()

    def start(self) -> LogReport | None:
        # Empty-tree checkpoints are checked before the first event.
        pending = self.pending
        while pending and pending[0][1].tree_size == 0:
            label, checkpoint = pending.pop(0)
            if checkpoint.root_hash != EMPTY_ROOT:
                return self.failed(
                    f"checkpoint {label} claims a non-empty root for size 0", None, FORKED
                )
            self.checked += 1
        self.boundary = pending[0][1].tree_size if pending else -1
        return None

    def check_batch(self, batch: LogBatch | PackedBatch) -> LogReport | None:
        done = 0
        total = len(batch)
        while done < total:
            # A segment never crosses a checkpoint: its root is compared at its size.
            end = total
            if self.boundary > self.count:
                end = min(total, done + self.boundary - self.count)
            segment = batch if (done, end) == (0, total) else batch.slice(done, end)
            unpacked: LogBatch | None = None
            if isinstance(segment, PackedBatch):
                if not self._packed_intact(segment):
                    unpacked = segment.unpack()
            elif not self._segment_intact(segment):
                unpacked = segment
            if unpacked is not None:
                # Something is wrong in here: find and name it event by event.
                for record in unpacked.records():
                    report = self.check_record(record)
                    if report is not None:
                        return report
            report = self._after_events(end - done)
            if report is not None:
                return report
            done = end
        return None

    def _packed_intact(self, segment: PackedBatch) -> bool:
        """Every check of `check_record` over a packed segment: what the database
        checked, then the chain and the leaves, compared for the whole segment at once
        (the stored hashes as one string against the computed ones' hex, end to end
        alike); on success as `_segment_intact`."""
        bodies = segment.bodies
        if segment.first != self.count + 1 or not bodies:
            return False
        sha256 = hashlib.sha256
        digest = bytes.fromhex(self.prev)
        # Each event's predecessor, its own chain hash and its leaf, in stored order.
        hashed = [digest]
        add = hashed.append
        for body in bodies:
            digest = sha256(digest + body).digest()
            add(digest)
            add(sha256(b"\x00" + body).digest())
            add(digest)
        hashed.pop()
        if b"".join(hashed).hex().encode() != segment.links:
            return False
        leaves = hashed[2::3]
        self._note_signed_bodies(segment.first, bodies)
        self.flush()
        self.builder.extend(leaves)
        self.prev = digest.hex()
        self.count += len(bodies)
        return True

    def _note_signed_bodies(self, first: int, bodies: list[bytes]) -> None:
        """As `_note_signed`, for bodies whose action the database compared with the
        column: a body whose action is `checkpoint.signed` holds `_SIGNED_MARK`."""
        for i, body in enumerate(bodies):
            if _SIGNED_MARK in body:
                event = orjson.loads(body)
                if event.get("action") == CHECKPOINT_SIGNED:
                    self._note(first + i, event)

    def _segment_intact(self, segment: LogBatch) -> bool:
        """Every check of `check_record` over the whole segment, one pass per check; on
        success the segment's leaves are in the tree and the chain has moved on."""
        seqs = segment.seqs
        first = self.count + 1
        if seqs != list(range(first, first + len(seqs))):
            return False
        prevs = segment.prev_hashes
        hashes = segment.hashes
        if prevs[0] != self.prev or prevs[1:] != hashes[:-1]:
            return False
        bodies = segment.bodies
        sha256 = hashlib.sha256
        fromhex = bytes.fromhex
        if [
            sha256(fromhex(p) + b).hexdigest() for p, b in zip(prevs, bodies, strict=True)
        ] != hashes:
            return False
        leaves = [sha256(b"\x00" + body).digest() for body in bodies]
        if [leaf.hex() for leaf in leaves] != segment.leaf_hashes:
            return False
        columns = list(segment.columns.items())
        # The bodies are parsed a slice at a time: parsed events are large, and a few
        # hundred of them stay in the processor's caches while they are compared.
        for start in range(0, len(bodies), _PARSED_AT_ONCE):
            end = start + _PARSED_AT_ONCE
            try:
                events = list(map(orjson.loads, bodies[start:end]))
            except orjson.JSONDecodeError:
                return False
            if not all(type(event) is dict for event in events):
                return False
            if [event.get("seq") for event in events] != seqs[start:end]:
                return False
            for column, values in columns:
                if [event.get(column) for event in events] != values[start:end]:
                    return False
        self._note_signed(segment)
        self.flush()
        self.builder.extend(leaves)
        self.prev = hashes[-1]
        self.count += len(seqs)
        return True

    def check_record(self, record: LogRecord) -> LogReport | None:
        """One event's checks, in the order their problems are reported."""
        seq = record.seq
        expected = self.count + 1
        if seq != expected:
            what = "missing" if seq > expected else "duplicated or reordered"
            return self.failed(f"event {expected} is {what}", expected)
        body = record.body
        if record.prev_hash != self.prev:
            return self.failed(
                f"event {seq} does not link to its predecessor "
                "(an earlier event was changed or removed)",
                seq,
            )
        if hashlib.sha256(bytes.fromhex(self.prev) + body).hexdigest() != record.hash:
            return self.failed(f"event {seq} was edited (its body no longer matches its hash)", seq)
        leaf = hashlib.sha256(b"\x00" + body).digest()
        if record.leaf_hash != leaf.hex():
            return self.failed(
                f"event {seq}: its stored Merkle leaf hash is missing or edited", seq
            )
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self.failed(f"event {seq} is not valid JSON", seq)
        if not isinstance(event, dict) or event.get("seq") != seq:
            return self.failed(f"event {seq}: the signed body names another sequence number", seq)
        for column, value in record.columns.items():
            if event.get(column) != value:
                return self.failed(
                    f"event {seq}: column {column!r} was edited (it disagrees with the "
                    "hashed body)",
                    seq,
                )
        if event.get("action") == CHECKPOINT_SIGNED:
            self._note(seq, event)
        self.leaves.append(leaf)
        self.prev = record.hash
        self.count = expected
        return None

    def _note_signed(self, segment: LogBatch) -> None:
        """The records of signed checkpoints in a segment that passed every check."""
        actions = segment.columns.get("action")
        if actions is not None:
            if CHECKPOINT_SIGNED not in actions:
                return
            found = [i for i, action in enumerate(actions) if action == CHECKPOINT_SIGNED]
        else:
            found = [i for i, body in enumerate(segment.bodies) if _SIGNED_MARK in body]
        for i in found:
            event = orjson.loads(segment.bodies[i])
            if event.get("action") == CHECKPOINT_SIGNED:
                self._note(segment.seqs[i], event)

    def _note(self, seq: int, event: dict[str, Any]) -> None:
        size, root = event.get("tree_size"), event.get("root")
        self.recorded.append((size if type(size) is int else -1, str(root), seq))

    def _after_events(self, added: int) -> LogReport | None:
        """Compare the checkpoints that end here and report progress."""
        count = self.count
        pending = self.pending
        if pending and pending[0][1].tree_size == count:
            # Leaves go into the tree in segments; a checkpoint's size is a segment end.
            self.flush()
        while pending and pending[0][1].tree_size == count:
            label, checkpoint = pending.pop(0)
            if self.builder.root() != checkpoint.root_hash:
                return self.failed(
                    f"checkpoint {label} signed a different root for the first {count} "
                    "events: the log was rewritten after it was signed (a fork)",
                    None,
                    FORKED,
                )
            self.checked += 1
            self.boundary = pending[0][1].tree_size if pending else -1
        every = self.progress_every
        if self.progress is not None and count // every > (count - added) // every:
            self.progress(count)
        return None

    def finish(self, head: ExpectedHead | None) -> LogReport:
        self.flush()
        count = self.count
        if self.progress is not None:
            self.progress(count)
        if self.pending:
            label, checkpoint = self.pending[-1]
            return self.failed(
                f"the log holds {count} events but checkpoint {label} covers "
                f"{checkpoint.tree_size}: events were deleted from the end, or the database "
                "was rolled back to an older copy",
                count + 1,
                TRUNCATED,
            )
        report = self._head_problem(head) or self._unvouched()
        if report is not None:
            return report
        return LogReport(
            True,
            count,
            self.prev,
            self.builder.root(),
            checkpoints_checked=self.checked,
            recorded=tuple((size, seq) for size, _root, seq in self.recorded),
        )

    def _head_problem(self, head: ExpectedHead | None) -> LogReport | None:
        count = self.count
        if head is not None:
            if head.size != count:
                finding = TRUNCATED if head.size > count else TAMPERED
                return self.failed(
                    f"the log holds {count} events but its head record says {head.size}",
                    count + 1,
                    finding,
                )
            if head.chain_head != self.prev:
                return self.failed(
                    "the head record's chain hash does not match the last event", count
                )
        return None

    def _unvouched(self) -> LogReport | None:
        """Every checkpoint the log records as signed must have been shown, with the
        root it was recorded with (the roots shown were compared with the tree)."""
        missing = [(size, seq) for size, _root, seq in self.recorded if size not in self.given]
        if missing:
            sizes = ", ".join(str(size) for size, _ in missing[:10])
            seqs = ", ".join(str(seq) for _, seq in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            return self.failed(
                f"{len(missing)} signed checkpoint(s) recorded in the log are missing: "
                f"those of {sizes}{more} events (recorded by events {seqs}); "
                "a checkpoint was deleted",
                missing[0][1],
                CHECKPOINT_MISSING,
            )
        for size, root, seq in self.recorded:
            if self.given[size] != root:
                return self.failed(
                    f"event {seq} records a checkpoint of {size} events with another root "
                    "than the one shown for that size (a fork)",
                    seq,
                    FORKED,
                )
        return None
