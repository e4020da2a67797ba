"""A witness: a file of checkpoints, each accepted only if it extends the last one.

The witness keeps what it has seen outside the state database, so a later rollback
of that database, a truncation or a rewritten history can still be shown. Each entry
is one JSON line holding the signed note; a fork (a new checkpoint that is not an
extension of the last one seen) is refused and the file is left unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from audit.checkpoints import Checkpoint, Verifier
from audit.errors import CheckpointInvalid, ConsistencyError, ProofInvalid
from audit.merkle import verify_consistency

ConsistencyFetcher = Callable[[int, int], Sequence[bytes]]


def read_notes(path: Path) -> list[str]:
    """Signed notes from a witness file (JSON lines) or a file holding one bare note."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        notes = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = orjson.loads(line)
                notes.append(str(entry["note"]))
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise CheckpointInvalid(f"{path}:{number} is not a witness entry") from exc
        return notes
    return [text]


@dataclass(frozen=True, slots=True)
class WitnessOutcome:
    checkpoint: Checkpoint
    previous: Checkpoint | None
    appended: bool


def witness(
    path: Path,
    note: str,
    *,
    verifier: Verifier,
    origin: str | None,
    consistency: ConsistencyFetcher,
) -> WitnessOutcome:
    """Check ``note`` against the last checkpoint in ``path`` and append it if it extends it.

    Raises ``CheckpointInvalid`` for a bad signature and ``ConsistencyError`` for a
    fork or a log that shrank.
    """
    checkpoint = verifier.verify(note, origin=origin)
    previous: Checkpoint | None = None
    if path.exists():
        notes = read_notes(path)
        if notes:
            previous = verifier.verify(notes[-1], origin=origin)
    if previous is not None:
        if checkpoint.tree_size < previous.tree_size:
            raise ConsistencyError(
                f"the log now has {checkpoint.tree_size} events but this witness saw "
                f"{previous.tree_size}: it was truncated or rolled back"
            )
        proof = consistency(previous.tree_size, checkpoint.tree_size)
        try:
            verify_consistency(
                previous.tree_size,
                checkpoint.tree_size,
                previous.root_hash,
                checkpoint.root_hash,
                proof,
            )
        except ProofInvalid as exc:
            raise ConsistencyError(
                f"fork: the checkpoint at size {checkpoint.tree_size} does not extend the one "
                f"this witness saw at size {previous.tree_size} ({exc})"
            ) from exc
        if checkpoint.tree_size == previous.tree_size:
            return WitnessOutcome(checkpoint, previous, appended=False)
    entry = {
        "tree_size": checkpoint.tree_size,
        "root": checkpoint.root_hash.hex(),
        "seen_at": datetime.now(UTC).isoformat(),
        "note": note,
    }
    with path.open("ab") as handle:
        handle.write(orjson.dumps(entry) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    return WitnessOutcome(checkpoint, previous, appended=True)
