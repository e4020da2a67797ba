"""The accounting of a streamed answer: what left the server, and its digest."""

from __future__ import annotations

import hashlib
from typing import Any

from connectors import Cancellation
from gateway.read.delivery import Delivery


def delivery(records: list[dict[str, Any]], settled: list[int]) -> Delivery:
    return Delivery(
        cancellation=Cancellation(),
        watch=None,
        record=lambda **event: records.append(event),
        settle=settled.append,
    )


def test_a_cut_answer_records_only_the_bytes_that_left_the_server():
    records: list[dict[str, Any]] = []
    settled: list[int] = []
    answer = delivery(records, settled)
    pieces = [b"a" * 10, b"b" * 10, b"c" * 10]
    for rows, piece in enumerate(pieces, start=1):
        answer.produced(piece, rows * 100)
    # Each piece travels framed by 4 bytes before and 2 after; 12 bytes of the wire are
    # still unsent when the read is cut: the last piece's 2-byte tail and 10 bytes.
    for piece in pieces:
        answer.handed_over(piece, unsent=0 if piece[:1] == b"a" else 100, framing=(4, 2))
    answer.finish(complete=False, reason="cut", unsent=12)
    (event,) = records
    assert event["bytes_delivered"] == 20 and event["complete"] is False
    assert event["digest"] == "sha256:" + hashlib.sha256(b"a" * 10 + b"b" * 10).hexdigest()
    assert event["rows"] == 200 and settled == [200]


def test_a_partly_sent_piece_counts_its_sent_bytes():
    records: list[dict[str, Any]] = []
    answer = delivery(records, [])
    answer.produced(b"x" * 10, 5)
    answer.handed_over(b"x" * 10, unsent=16, framing=(4, 2))
    answer.finish(complete=False, unsent=8)  # 4 + 4 bytes of body sent, 6 + 2 not
    assert records[0]["bytes_delivered"] == 4 and records[0]["rows"] == 0
    assert records[0]["digest"] == "sha256:" + hashlib.sha256(b"xxxx").hexdigest()


def test_a_complete_answer_records_everything_once():
    records: list[dict[str, Any]] = []
    answer = delivery(records, [])
    answer.produced(b"whole", 1)
    answer.handed_over(b"whole", unsent=5)
    answer.finish(complete=True)
    answer.finish(complete=False, reason="late")
    assert len(records) == 1 and records[0]["bytes_delivered"] == 5 and records[0]["rows"] == 1
