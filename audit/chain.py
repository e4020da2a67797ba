"""The hash chain over audit events: canonical encoding, linking and verification.

Each event's body is canonical JSON (sorted keys, no insignificant white space,
UTF-8). Its hash is SHA-256 over the previous event's hash and the body, so editing,
deleting, inserting or reordering any event breaks every later link.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS = "0" * 64


def canonical(event: Mapping[str, Any]) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def link(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + body).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    body: bytes
    prev_hash: str
    hash: str
    # Searchable copies kept beside the body; they must agree with it.
    columns: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    events: int
    head: str
    problem: str | None = None
    bad_seq: int | None = None


def verify(events: Iterable[StoredEvent], *, expect_first_seq: int = 1) -> VerifyReport:
    """Recompute the chain in sequence order and report the first inconsistency."""
    prev = GENESIS
    expected_seq = expect_first_seq
    count = 0
    for event in events:
        if event.seq != expected_seq:
            what = "missing" if event.seq > expected_seq else "duplicated or reordered"
            return VerifyReport(False, count, prev, f"event {expected_seq} is {what}", expected_seq)
        if event.prev_hash != prev:
            return VerifyReport(
                False,
                count,
                prev,
                f"event {event.seq} does not link to its "
                "predecessor (an earlier event was changed or removed)",
                event.seq,
            )
        if link(prev, event.body) != event.hash:
            return VerifyReport(
                False,
                count,
                prev,
                f"event {event.seq} was edited (its body no longer matches its hash)",
                event.seq,
            )
        try:
            body = orjson.loads(event.body)
        except orjson.JSONDecodeError:
            return VerifyReport(
                False, count, prev, f"event {event.seq} is not valid JSON", event.seq
            )
        for column, value in event.columns.items():
            if body.get(column) != value:
                return VerifyReport(
                    False,
                    count,
                    prev,
                    f"event {event.seq}: column {column!r} "
                    "was edited (it disagrees with the signed body)",
                    event.seq,
                )
        prev = event.hash
        expected_seq += 1
        count += 1
    return VerifyReport(True, count, prev)
