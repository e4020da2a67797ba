"""The hash chain: any single edit, deletion or swap is detected."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from audit.chain import GENESIS, StoredEvent, canonical, link, verify


def build(bodies: list[dict[str, object]]) -> list[StoredEvent]:
    events, prev = [], GENESIS
    for seq, body in enumerate(bodies, start=1):
        data = canonical({**body, "seq": seq})
        digest = link(prev, data)
        events.append(StoredEvent(seq, data, prev, digest, {"seq": seq}))
        prev = digest
    return events


bodies = st.lists(
    st.dictionaries(
        st.sampled_from(["actor", "action", "rows"]),
        st.text(max_size=8) | st.integers(-(2**63), 2**63 - 1),
        min_size=1,
    ),
    min_size=2,
    max_size=12,
)


@given(bodies)
def test_intact_chains_verify(items: list[dict[str, object]]):
    report = verify(build(items))
    assert report.ok and report.events == len(items)


@given(bodies, st.data())
def test_an_edit_is_detected(items: list[dict[str, object]], data: st.DataObject):
    events = build(items)
    i = data.draw(st.integers(0, len(events) - 1))
    e = events[i]
    events[i] = StoredEvent(e.seq, e.body + b" ", e.prev_hash, e.hash, e.columns)
    assert not verify(events).ok


@given(bodies, st.data())
def test_a_deletion_is_detected(items: list[dict[str, object]], data: st.DataObject):
    events = build(items)
    del events[data.draw(st.integers(0, len(events) - 2))]  # the tail alone needs a checkpoint
    assert not verify(events).ok


@given(bodies, st.data())
def test_a_swap_is_detected(items: list[dict[str, object]], data: st.DataObject):
    events = build(items)
    i = data.draw(st.integers(0, len(events) - 2))
    events[i], events[i + 1] = events[i + 1], events[i]
    assert not verify(events).ok
