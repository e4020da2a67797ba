"""audit verify on SQLite reads the log packed by the database and checks a batch at a
time: every tamper is still found, and named at the very event the event-by-event
check names, wherever it sits in a batch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from audit import LogBatch, PackedBatch, verify_log_batches
from audit.chain import link
from audit.checkpoints import Checkpoint
from audit.logcheck import ExpectedHead, LogReport
from audit.merkle import leaf_hash
from audit.redaction import Redactor
from gateway.auditing.log import AuditLog
from gateway.auditing.log_batches import read_log_batches, read_packed_batches
from gateway.state.database import create_state_engine, migrate

EVENTS = 3000
MIDDLE = 1717


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("verify") / "state.db"
    engine = create_state_engine(f"sqlite:///{path}")
    migrate(engine)
    log = AuditLog(engine, Redactor(b"k" * 32), policy_version="test")
    for i in range(EVENTS):
        # Some events mention searchable names in nested fields, some hold escapes.
        details = {"filters": {"actor": "nested"}} if i % 7 == 0 else {"note": f'"q"\t{i}'}
        log.append("data.query", actor=f"a{i % 5}", dataset="patients", decision="allow", **details)
    log.close()
    engine.dispose()
    return path


@pytest.fixture
def engine(template: Path, tmp_path: Path) -> Engine:
    path = tmp_path / "state.db"
    shutil.copy(template, path)
    return create_state_engine(f"sqlite:///{path}")


def _log(engine: Engine) -> AuditLog:
    return AuditLog(engine, Redactor(b"k" * 32), policy_version="test")


def _both(engine: Engine, **kwargs: object) -> tuple[LogReport, LogReport]:
    """The report of the packed check and of the event-by-event one."""
    head = _log(engine).head()
    expected = ExpectedHead(head.size, head.chain_head)
    packed = verify_log_batches(read_packed_batches(engine), head=expected, **kwargs)  # type: ignore[arg-type]
    plain = verify_log_batches(read_log_batches(engine), head=expected, **kwargs)  # type: ignore[arg-type]
    return packed, plain


def _rehash(engine: Engine, seq: int, body: bytes) -> None:
    """Store ``body`` for event ``seq`` with its own hash and leaf recomputed."""
    with engine.begin() as conn:
        prev = conn.execute(text("SELECT prev_hash FROM audit_events WHERE seq = :s"), {"s": seq})
        chained = link(prev.scalar_one(), body)
        conn.execute(
            text("UPDATE audit_events SET body = :b, hash = :h, leaf_hash = :l WHERE seq = :s"),
            {"b": body.decode(), "h": chained, "l": leaf_hash(body).hex(), "s": seq},
        )


def test_an_intact_log_is_checked_a_packed_batch_at_a_time(engine: Engine):
    batches = list(read_packed_batches(engine, batch=1000))
    assert [len(b) for b in batches] == [1000, 1000, 1000]
    assert all(isinstance(b, PackedBatch) for b in batches)
    assert all(len(b.links) == 3 * 64 * len(b) for b in batches)
    packed, plain = _both(engine)
    assert packed.ok and packed.events == EVENTS
    assert (packed.root, packed.head) == (plain.root, plain.head)
    assert _log(engine).verify().ok


@pytest.mark.parametrize(
    ("statements", "problem"),
    [
        (
            [f"UPDATE audit_events SET body = replace(body, 'allow', 'deny') WHERE seq = {MIDDLE}"],
            f"event {MIDDLE} was edited",
        ),
        (
            [f"UPDATE audit_events SET actor = 'someone' WHERE seq = {MIDDLE}"],
            f"event {MIDDLE}: column 'actor' was edited",
        ),
        (
            [f"UPDATE audit_events SET dataset = NULL WHERE seq = {MIDDLE}"],
            f"event {MIDDLE}: column 'dataset' was edited",
        ),
        (
            [f"UPDATE audit_events SET ts = replace(ts, '-', '/') WHERE seq = {MIDDLE}"],
            f"event {MIDDLE}: column 'ts' was edited",
        ),
        (
            [f"UPDATE audit_events SET leaf_hash = hash WHERE seq = {MIDDLE}"],
            f"event {MIDDLE}: its stored Merkle leaf hash",
        ),
        (
            [f"UPDATE audit_events SET hash = upper(hash) WHERE seq = {MIDDLE}"],
            f"event {MIDDLE} was edited",
        ),
        (
            # One character moved from one hash column to the next: the same text
            # end to end, but no longer the same columns.
            [
                "UPDATE audit_events SET prev_hash = substr(prev_hash, 1, 63), "
                f"hash = substr(prev_hash, 64) || hash WHERE seq = {MIDDLE}"
            ],
            f"event {MIDDLE} does not link to its predecessor",
        ),
        (
            [f"UPDATE audit_events SET prev_hash = CAST(prev_hash AS BLOB) WHERE seq = {MIDDLE}"],
            f"event {MIDDLE} does not link to its predecessor",
        ),
        (
            [f"UPDATE audit_events SET body = 'not json' WHERE seq = {MIDDLE}"],
            f"event {MIDDLE} was edited",
        ),
        ([f"DELETE FROM audit_events WHERE seq = {MIDDLE}"], f"event {MIDDLE} is missing"),
        (
            # A reordered pair: the two events swap places, hashes and all.
            [
                f"UPDATE audit_events SET seq = -1 WHERE seq = {MIDDLE}",
                f"UPDATE audit_events SET seq = {MIDDLE} WHERE seq = {MIDDLE + 1}",
                f"UPDATE audit_events SET seq = {MIDDLE + 1} WHERE seq = -1",
            ],
            f"event {MIDDLE} does not link to its predecessor",
        ),
        (
            ["UPDATE audit_events SET seq = 0 WHERE seq = 1"],
            "event 1 is duplicated or reordered",
        ),
        (
            [f"UPDATE audit_events SET seq = {EVENTS + 5} WHERE seq = {EVENTS}"],
            f"event {EVENTS} is missing",
        ),
    ],
)
def test_a_tamper_in_the_middle_of_a_batch_is_named_exactly(
    engine: Engine, statements: list[str], problem: str
):
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    packed, plain = _both(engine)
    assert not packed.ok
    assert problem in (packed.problem or ""), packed.problem
    assert packed == plain
    assert _log(engine).verify() == packed


def test_a_body_edited_with_its_hash_recomputed_is_caught_by_the_chain(engine: Engine):
    body = _log(engine).body(MIDDLE)
    assert body is not None
    assert '"policy_version":"test"' in body
    _rehash(engine, MIDDLE, body.replace('"test"', '"forged"').encode())
    packed, plain = _both(engine)
    assert not packed.ok and packed.bad_seq == MIDDLE + 1
    assert "does not link to its predecessor" in (packed.problem or "")
    assert packed == plain


def test_a_body_rewritten_with_every_hash_but_a_stale_column_is_caught(engine: Engine):
    # The last event, so that no later link breaks: only the columns can tell.
    log = _log(engine)
    body = log.body(EVENTS)
    assert body is not None
    _rehash_last(engine, body.replace('"actor":"a4"', '"actor":"zz"').encode())
    packed, plain = _both(engine)
    assert not packed.ok and packed.bad_seq == EVENTS
    assert "column 'actor' was edited" in (packed.problem or "")
    assert packed == plain


def test_checkpoints_inside_a_packed_batch_are_compared_at_their_size(engine: Engine):
    intact, _ = _both(engine)
    sizes = (1, 999, MIDDLE)
    plain_roots = {}
    for size in sizes:
        prefix = verify_log_batches(read_log_batches(engine, upto=size))
        plain_roots[size] = prefix.root
    checkpoints = [(str(n), Checkpoint("test/log", n, plain_roots[n])) for n in sizes]
    packed, plain = _both(engine, checkpoints=checkpoints)
    assert packed.ok and packed.checkpoints_checked == 3 and packed.root == intact.root
    forged = [*checkpoints[:2], ("bad", Checkpoint("test/log", MIDDLE, b"\x01" * 32))]
    packed, plain = _both(engine, checkpoints=forged)
    assert not packed.ok and packed.finding == "forked" and packed == plain


def test_a_log_batch_is_still_checked_when_the_database_cannot_pack_one(engine: Engine):
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE audit_events SET body = '{{' WHERE seq = {MIDDLE}"))
    batches = list(read_packed_batches(engine, batch=1000))
    assert [type(b) for b in batches] == [PackedBatch, LogBatch, PackedBatch]


def test_a_batch_the_database_finds_failing_is_checked_event_by_event(engine: Engine):
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE audit_events SET actor = 'someone' WHERE seq = {MIDDLE}"))
    batches = list(read_packed_batches(engine, batch=1000))
    assert [type(b) for b in batches] == [PackedBatch, LogBatch, PackedBatch]
    assert [len(b) for b in batches] == [1000, 1000, 1000]


def _rehash_last(engine: Engine, body: bytes) -> None:
    """Rewrite the last event as a writer holding the log could: hashes and head too."""
    _rehash(engine, EVENTS, body)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE audit_head SET chain_head = (SELECT hash FROM audit_events WHERE seq = :s)"
            ),
            {"s": EVENTS},
        )


def test_a_body_holding_a_line_break_is_checked_on_its_own_lines(engine: Engine):
    # JSON allows a line break between tokens, and the bulk read joins bodies with line
    # breaks: such a body sends its batch to the event-by-event check, which passes it.
    body = _log(engine).body(EVENTS)
    assert body is not None
    _rehash_last(engine, body.replace(',"actor":', ',\n"actor":').encode())
    batches = list(read_packed_batches(engine, batch=1000))
    assert [type(b) for b in batches] == [PackedBatch, PackedBatch, LogBatch]
    packed, plain = _both(engine)
    assert packed.ok and packed.events == EVENTS
    assert packed == plain
