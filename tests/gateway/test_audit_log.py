"""The audit log's storage: group commit, Merkle head, proofs and checkpoints, on SQLite
and PostgreSQL, with several writers sharing one log."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from audit.checkpoints import Signer
from audit.errors import AuditUnavailable, ConsistencyError
from audit.merkle import leaf_hash, root_from_leaf_hashes, verify_consistency, verify_inclusion
from audit.redaction import Redactor
from gateway.auditing.batch_write import ADVISORY_LOCK_ID
from gateway.auditing.checkpointer import Checkpointer
from gateway.auditing.log import AuditLog
from gateway.auditing.proofs import ProofSource
from gateway.state.database import create_state_engine, migrate


def make_log(engine: Engine, timeout_s: float = 2.0) -> AuditLog:
    return AuditLog(engine, Redactor(b"k" * 32), policy_version="test", timeout_s=timeout_s)


def hammer(logs: list[AuditLog], threads_per_log: int, each: int) -> list[int]:
    seqs: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(log: AuditLog, n: int) -> None:
        try:
            for i in range(each):
                seq = log.append("data.query", actor=f"w{n}", decision="allow", i=i)
                with lock:
                    seqs.append(seq)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(log, n))
        for n, log in enumerate(logs * threads_per_log)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    return seqs


def test_group_commit_from_many_threads_and_two_writers_stays_gap_free(state_url: str):
    engines = [create_state_engine(state_url) for _ in range(2)]
    migrate(engines[0])
    logs = [make_log(e) for e in engines]
    seqs = hammer(logs, threads_per_log=4, each=25)
    assert sorted(seqs) == list(range(1, 201))  # every caller got its own, distinct seq
    report = logs[0].verify()
    assert report.ok and report.events == 200
    head = logs[1].head()
    assert head.size == 200 and head.root() == report.root
    for engine in engines:
        engine.dispose()


def test_proofs_from_stored_leaves_match_the_tree(engine: Engine):
    log = make_log(engine)
    for i in range(600):
        log.append("data.query", actor="mei", i=i)
    proofs = ProofSource(log)
    leaves = log.leaf_hashes(0, 600)
    assert leaves[41] == leaf_hash(log.body(42).encode())  # type: ignore[union-attr]
    for size in (1, 7, 256, 300, 513, 600):
        root = root_from_leaf_hashes(leaves[:size])
        assert proofs.range_root(0, size) == root
        for index in {0, size // 2, size - 1}:
            verify_inclusion(leaves[index], index, size, proofs.inclusion(index, size), root)
    verify_consistency(
        300,
        600,
        root_from_leaf_hashes(leaves[:300]),
        log.head().root(),
        proofs.consistency(300, 600),
    )


def test_checkpoints_are_signed_and_a_rewritten_history_is_not(engine: Engine):
    log = make_log(engine)
    proofs = ProofSource(log)
    signer = Signer.generate("test/log")
    checkpointer = Checkpointer(log, proofs, signer, origin="test/log")
    for i in range(5):
        log.append("data.query", actor="mei", i=i)
    first = checkpointer.checkpoint()
    assert first is not None and first.checkpoint.tree_size == 5
    # The log records what was signed; that record alone is not signed again.
    assert log.event(6) is not None and log.event(6)["action"] == "checkpoint.signed"
    assert (log.event(6)["tree_size"], log.event(6)["root"]) == (
        5,
        first.checkpoint.root_hash.hex(),
    )
    assert checkpointer.checkpoint() == first  # nothing new: no new checkpoint
    log.append("data.query", actor="mei", i=5)
    assert checkpointer.covering(7).checkpoint.tree_size == 7
    # An insider replaces the leaf hash of event 2: the next checkpoint is refused.
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE audit_events SET leaf_hash = hash WHERE seq = 2")
    log.append("data.query", actor="mei", i=6)
    fresh = Checkpointer(log, ProofSource(log), signer, origin="test/log")  # no cached roots
    with pytest.raises(ConsistencyError):
        fresh.checkpoint()


def test_an_append_that_cannot_get_the_lock_in_time_fails_closed(tmp_path: Path):
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    log = make_log(engine, timeout_s=0.3)
    log.append("data.query", actor="mei")
    blocker = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(AuditUnavailable):
            log.append("data.query", actor="mei")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert log.append("data.query", actor="mei") == 2  # no gap, nothing half-written
    assert log.verify().ok
    engine.dispose()


def test_an_append_waiting_on_another_writers_postgres_lock_fails_closed(pg_schema_url: str):
    engine = create_state_engine(pg_schema_url)
    migrate(engine)
    log = make_log(engine, timeout_s=0.3)
    log.append("data.query", actor="mei")
    blocker = engine.raw_connection()
    try:
        # Another gateway process in the middle of its append holds the log's lock.
        blocker.cursor().execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_ID,))
        started = time.monotonic()
        with pytest.raises(AuditUnavailable):
            log.append("data.query", actor="mei")
        assert time.monotonic() - started < 2.0
    finally:
        blocker.rollback()
        blocker.close()
    assert log.append("data.query", actor="mei") == 2  # no gap, nothing half-written
    assert log.verify().ok
    engine.dispose()


def test_a_missing_head_fails_closed_instead_of_restarting_the_log(engine: Engine):
    log = make_log(engine)
    log.append("data.query", actor="mei")
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit_head")
    with pytest.raises(AuditUnavailable):
        log.append("data.query", actor="mei")


def test_linked_events_are_adjacent_and_the_second_names_the_first(engine: Engine):
    log = make_log(engine)
    log.append("auth.failed", decision="deny")
    query = log.prepare("data.query", dataset="patients", decision="allow")
    read = log.prepare("data.read", dataset="patients", decision="allow", query_seq=None)
    first, second = log.append_linked(query, read, link="query_seq")
    assert (first, second) == (2, 3)
    assert log.event(second)["query_seq"] == first
    assert log.event(first)["action"] == "data.query"
    assert log.verify().ok


def test_reads_borrow_the_writers_connection_on_sqlite_while_no_append_holds_it(
    engine: Engine,
):
    log = make_log(engine)
    log.append("data.query", actor="a", decision="allow")
    sqlite = engine.dialect.name == "sqlite"
    # On SQLite the writer's connection stays checked out between appends.
    assert engine.pool.checkedout() == (1 if sqlite else 0)  # type: ignore[attr-defined]
    with log.read_connection() as raw:
        first = raw
        assert raw.cursor().execute("SELECT 1").fetchone()[0] == 1
    with log.read_connection() as again:
        assert (again is first) == sqlite
        # While a read holds the writer's connection, an append waits for it.
        appended: list[int] = []
        writer = threading.Thread(
            target=lambda: appended.append(log.append("data.query", actor="b", decision="x"))
        )
        writer.start()
        writer.join(0.2 if sqlite else 10)
        assert appended == ([] if sqlite else [2])
    writer.join(5)
    assert appended == [2]
    # While an append holds it, a read gets a pooled connection instead of waiting.
    with log._write_lock, log.read_connection() as other:
        assert other is not first
        assert other.cursor().execute("SELECT count(*) FROM audit_events").fetchone()[0] == 2
    if sqlite:
        # A read that left a transaction open does not leave it to the next one.
        with log.read_connection() as raw:
            raw.cursor().execute("BEGIN")
            raw.cursor().execute("SELECT count(*) FROM audit_events").fetchone()
        with log.read_connection() as raw:
            assert raw is first and not raw.in_transaction
    log.close()
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert log.append("data.query", actor="c", decision="allow") == 3
    log.close()
    assert log.verify().ok


def test_fields_with_tabs_newlines_backslashes_and_nulls_are_stored_as_hashed(engine: Engine):
    """Events are stored by COPY on PostgreSQL, whose text format gives tabs, newlines
    and backslashes a meaning: every stored column must still agree with the body."""
    log = make_log(engine)
    awkward = "a\tb\nc\rd\\e\\N \\t end"
    seq = log.append(
        "data.query",
        actor="tab\there",
        dataset="new\nline",
        module="back\\slash",
        decision="allow",
        reasons=[awkward],
        purpose=awkward,
        nested={"k\tey": [awkward, None, 3.5]},
    )
    log.append("data.query", actor=None, dataset=None, decision=None)
    stored = log.event(seq)
    assert stored is not None
    assert stored["actor"] == "tab\there" and stored["dataset"] == "new\nline"
    assert stored["module"] == "back\\slash" and stored["purpose"] == awkward
    assert stored["nested"] == {"k\tey": [awkward, None, 3.5]}
    report = log.verify()
    assert report.ok and report.events == 2


def test_a_writer_continues_after_another_process_appended_without_forking(state_url: str):
    """A writer remembers the head after its own batch; when another process has
    appended since, its next batch must continue from the stored head instead."""
    engines = [create_state_engine(state_url) for _ in range(2)]
    migrate(engines[0])
    ours, theirs = (make_log(e) for e in engines)
    assert ours.append("data.query", actor="ours") == 1
    assert [theirs.append("data.query", actor="theirs") for _ in range(3)] == [2, 3, 4]
    query = ours.prepare("data.query", actor="ours", decision="allow")
    read = ours.prepare("data.read", actor="ours", decision="allow", query_seq=None)
    assert ours.append_linked(query, read, link="query_seq") == (5, 6)
    assert ours.event(6)["query_seq"] == 5  # linked again after the head moved under it
    assert theirs.append("data.query", actor="theirs") == 7
    report = ours.verify()
    assert report.ok and report.events == 7
    assert ours.head().root() == theirs.head().root() == report.root
    for log in (ours, theirs):
        log.close()
    for engine in engines:
        engine.dispose()


def test_a_writer_does_not_continue_a_head_of_the_same_size_but_another_history(
    state_url: str,
):
    """The size alone does not name a head: a database restored to an earlier state and
    appended to by another process can reach this writer's size with other events."""
    engines = [create_state_engine(state_url) for _ in range(2)]
    migrate(engines[0])
    ours, theirs = (make_log(e) for e in engines)
    ours.append("data.query", actor="ours")
    ours.append("data.query", actor="ours")
    with engines[1].begin() as conn:  # back to the state after event 1
        first_hash, first_leaf = conn.exec_driver_sql(
            "SELECT hash, leaf_hash FROM audit_events WHERE seq = 1"
        ).one()
        conn.exec_driver_sql("DELETE FROM audit_events WHERE seq = 2")
        conn.execute(
            text("UPDATE audit_head SET size = 1, chain_head = :h, frontier = :f WHERE id = 1"),
            {"h": first_hash, "f": first_leaf},
        )
    assert theirs.append("data.query", actor="theirs") == 2
    assert ours.append("data.query", actor="ours") == 3
    report = ours.verify()
    assert report.ok and report.events == 3
    for log in (ours, theirs):
        log.close()
    for engine in engines:
        engine.dispose()
