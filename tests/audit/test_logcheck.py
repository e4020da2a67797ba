"""Whole-log verification: any single edit, deletion, insertion or swap is detected."""

from __future__ import annotations

import dataclasses

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.chain import GENESIS, canonical, link
from audit.checkpoints import Checkpoint
from audit.logcheck import (
    CHECKPOINT_MISSING,
    FORKED,
    TAMPERED,
    TRUNCATED,
    ExpectedHead,
    LogRecord,
    verify_log,
)
from audit.merkle import leaf_hash, root_from_leaf_hashes


def build(bodies: list[dict[str, object]]) -> list[LogRecord]:
    """A well-formed log of these events, hashes and searchable columns included."""
    records, prev = [], GENESIS
    for seq, fields in enumerate(bodies, 1):
        event = {**fields, "seq": seq}
        body = canonical(event)
        chained = link(prev, body)
        records.append(
            LogRecord(
                seq, body, prev, chained, leaf_hash(body).hex(), {"actor": event.get("actor")}
            )
        )
        prev = chained
    return records


def rebuild(records: list[LogRecord]) -> list[LogRecord]:
    """What an insider would do after an edit: renumber and recompute every hash."""
    return build([{k: v for k, v in orjson.loads(r.body).items() if k != "seq"} for r in records])


events = st.lists(
    st.fixed_dictionaries(
        {
            "actor": st.sampled_from(["mei", "lin", "sam"]),
            "action": st.sampled_from(["data.query", "data.denied"]),
            "n": st.integers(0, 10**6),
        }
    ),
    min_size=2,
    max_size=40,
)


def checkpoint_of(records: list[LogRecord]) -> Checkpoint:
    root = root_from_leaf_hashes(bytes.fromhex(r.leaf_hash or "") for r in records)
    return Checkpoint("test/log", len(records), root)


def test_an_intact_log_verifies_against_its_checkpoints():
    records = build([{"actor": "mei", "i": i} for i in range(37)])
    checkpoints = [(str(n), checkpoint_of(records[:n])) for n in (0, 1, 5, 16, 37)]
    report = verify_log(records, checkpoints=checkpoints, head=ExpectedHead(37, records[-1].hash))
    assert report.ok and report.events == 37 and report.checkpoints_checked == 5
    assert report.root == checkpoints[-1][1].root_hash


@settings(max_examples=150, deadline=None)
@given(events, st.data())
def test_any_single_naive_edit_deletion_or_swap_is_detected(bodies, data):
    records = build(bodies)
    i = data.draw(st.integers(0, len(records) - 1))
    mutation = data.draw(st.sampled_from(["edit", "delete", "swap", "column", "duplicate"]))
    tampered = list(records)
    if mutation == "edit":
        body = bytearray(records[i].body)
        position = data.draw(st.integers(0, len(body) - 1))
        body[position] ^= data.draw(st.integers(1, 255))
        tampered[i] = dataclasses.replace(records[i], body=bytes(body))
    elif mutation == "delete":
        del tampered[i]
    elif mutation == "swap":
        j = data.draw(st.integers(0, len(records) - 1).filter(lambda j: j != i))
        tampered[i], tampered[j] = tampered[j], tampered[i]
    elif mutation == "column":
        tampered[i] = dataclasses.replace(records[i], columns={"actor": "someone-else"})
    else:
        tampered.insert(i, records[i])
    head = ExpectedHead(len(records), records[-1].hash)
    report = verify_log(tampered, head=head)
    assert not report.ok
    assert report.finding in (TAMPERED, TRUNCATED)


@settings(max_examples=100, deadline=None)
@given(events, st.data())
def test_a_consistent_rewrite_is_caught_by_an_earlier_checkpoint(bodies, data):
    records = build(bodies)
    saved = checkpoint_of(records)
    i = data.draw(st.integers(0, len(records) - 1))
    mutation = data.draw(st.sampled_from(["edit", "delete", "swap", "truncate"]))
    events_now = list(records)
    if mutation == "edit":
        event = orjson.loads(records[i].body)
        event["n"] = event["n"] + 1
        del event["seq"]
        events_now[i] = LogRecord(i + 1, canonical(event), "", "", None, {})
    elif mutation == "delete":
        del events_now[i]
    elif mutation == "swap":
        same = orjson.loads(records[i].body)
        others = [
            j
            for j, r in enumerate(records)
            if {**orjson.loads(r.body), "seq": 0} != {**same, "seq": 0}
        ]
        if others:  # swapping two identical events changes nothing
            j = data.draw(st.sampled_from(others))
            events_now[i], events_now[j] = events_now[j], events_now[i]
        else:
            del events_now[i]
    else:
        events_now = events_now[:i]
    forged = rebuild(events_now)
    # The forged log is consistent with itself ...
    assert verify_log(forged).ok
    # ... but not with the checkpoint signed before the rewrite.
    report = verify_log(forged, checkpoints=[("saved", saved)])
    assert not report.ok
    assert report.finding in (FORKED, TRUNCATED)


def test_a_checkpoint_the_log_records_must_be_shown():
    records = build([{"actor": "mei", "i": i} for i in range(4)])
    signed = checkpoint_of(records)
    record = {"action": "checkpoint.signed", "tree_size": 4, "root": signed.root_hash.hex()}
    # A body that merely mentions the action in a nested field is not a record.
    mention = {"actor": "sam", "note": {"action": "checkpoint.signed", "tree_size": 9}}
    records = build([{"actor": "mei", "i": i} for i in range(4)] + [record, mention])
    head = ExpectedHead(6, records[-1].hash)
    shown = verify_log(records, checkpoints=[("stored #1", signed)], head=head)
    assert shown.ok and shown.recorded == ((4, 5),), shown
    missing = verify_log(records, head=head)
    assert not missing.ok and missing.finding == CHECKPOINT_MISSING
    assert "those of 4 events (recorded by events 5)" in (missing.problem or "")
