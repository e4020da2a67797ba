"""The audit search index: filled after the append, complete before every search,
checked by verify. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command as alembic_command
from sqlalchemy import Engine, inspect, text

from audit.logcheck import ExpectedHead, verify_log
from audit.redaction import Redactor
from gateway.auditing.index import AuditIndexer, catch_up, first_mismatch, rebuild
from gateway.auditing.log import AuditLog, RequestMeta
from gateway.auditing.search import EventFilter, count, search
from gateway.state.database import alembic_config, create_state_engine, migrate


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.pg)])
def unmigrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url = str(request.getfixturevalue("pg_schema_url"))
    engine = create_state_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(unmigrated: Engine) -> Engine:
    migrate(unmigrated)
    return unmigrated


def _log(engine: Engine) -> AuditLog:
    return AuditLog(engine, Redactor(b"k" * 32), policy_version="test")


def _indexed(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM audit_index")).scalar_one())


def test_a_search_finds_the_event_appended_just_before_it(engine: Engine):
    log = _log(engine)
    for i in range(5):
        log.append("data.query", actor="mei" if i % 2 else "sam", decision="allow")
    assert _indexed(engine) == 0  # nothing copies on the append itself
    seq = log.append("grant.revoke", actor="custodian", dataset="patients", decision="allow")
    found, _ = search(engine, EventFilter(action="grant.revoke"))
    assert [e["seq"] for e in found] == [seq]
    assert [e["seq"] for e in search(engine, EventFilter(actor="mei"))[0]] == [4, 2]
    assert count(engine, EventFilter(actor="sam"), upto=5) == 3
    assert _indexed(engine) == 6


def test_catch_up_copies_each_event_once_in_batches(engine: Engine):
    log = _log(engine)
    for i in range(25):
        log.append("data.read", actor=f"p{i % 4}", dataset="patients", module="clinical")
    assert catch_up(engine, batch=10) == 25
    assert catch_up(engine, batch=10) == 0
    assert _indexed(engine) == 25
    assert first_mismatch(engine) is None
    with engine.connect() as conn:
        copied = conn.execute(
            text("SELECT actor, dataset, module FROM audit_index WHERE seq = 7")
        ).one()
    assert tuple(copied) == ("p2", "patients", "clinical")


def test_catch_ups_racing_appends_leave_a_complete_index(engine: Engine):
    log = _log(engine)
    stop = threading.Event()
    errors: list[BaseException] = []

    def index_continuously() -> None:
        try:
            while not stop.is_set():
                catch_up(engine, batch=7)
        except BaseException as exc:  # the test fails on it below
            errors.append(exc)

    threads = [threading.Thread(target=index_continuously) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for i in range(120):
            log.append("data.query", actor=f"p{i % 5}", decision="allow")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    catch_up(engine)
    assert _indexed(engine) == 120
    assert log.verify().ok


@pytest.mark.parametrize(
    ("statement", "hidden"),
    [
        ("DELETE FROM audit_index WHERE seq = 2", 2),
        ("UPDATE audit_index SET actor = 'someone' WHERE seq = 3", 3),
        ("UPDATE audit_index SET action = 'data.read' WHERE seq = 1", 1),
        ("UPDATE audit_index SET request_id = NULL WHERE seq = 4", 4),
    ],
)
def test_verify_reports_an_index_that_hides_an_event(engine: Engine, statement: str, hidden: int):
    log = _log(engine)
    for i in range(5):
        log.append("data.query", meta=RequestMeta(f"req-{i:04d}"), actor="mei", decision="allow")
    catch_up(engine)
    assert log.verify().ok
    with engine.begin() as conn:
        conn.execute(text(statement))
    report = log.verify()
    assert not report.ok
    assert report.bad_seq == hidden
    assert f"search index leaves out or misstates event {hidden}" in (report.problem or "")


def test_catch_up_steps_over_a_gap_in_the_log(engine: Engine):
    log = _log(engine)
    for _ in range(4):
        log.append("data.query", actor="mei", decision="allow")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    assert catch_up(engine, batch=1) == 3
    assert "event 2 is missing" in (log.verify().problem or "")


def test_the_indexer_keeps_up_while_the_server_runs(engine: Engine):
    log = _log(engine)
    indexer = AuditIndexer(engine, interval_s=0.05)
    indexer.start()
    try:
        for _ in range(10):
            log.append("data.query", actor="mei", decision="allow")
        deadline = time.monotonic() + 10
        while _indexed(engine) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        indexer.stop()
    assert _indexed(engine) == 10


def test_revision_0007_moves_the_search_indexes_and_keeps_the_log(unmigrated: Engine):
    engine = unmigrated

    def indexes(table: str) -> set[str]:
        return {str(i["name"]) for i in inspect(engine).get_indexes(table)}

    alembic_command.upgrade(alembic_config(engine), "0006")
    log = _log(engine)
    for i in range(6):
        log.append("data.query", actor="mei" if i % 2 else "sam", decision="allow")
    assert len(indexes("audit_events")) == 7
    migrate(engine)
    assert indexes("audit_events") == set()
    assert len(indexes("audit_index")) == 7 and "ix_audit_index_actor" in indexes("audit_index")
    assert _indexed(engine) == 6 and first_mismatch(engine) is None
    assert [e["seq"] for e in search(engine, EventFilter(actor="mei"))[0]] == [6, 4, 2]
    assert log.verify().ok
    alembic_command.downgrade(alembic_config(engine), "0006")
    assert len(indexes("audit_events")) == 7
    assert not inspect(engine).has_table("audit_index")
    # The chain alone: the code's verify checks the index this revision lacks.
    head = log.head()
    report = verify_log(log.records(), head=ExpectedHead(head.size, head.chain_head))
    assert report.ok and report.events == 6


def test_rebuild_replaces_a_damaged_index(engine: Engine):
    log = _log(engine)
    for _ in range(6):
        log.append("data.query", actor="mei", decision="allow")
    catch_up(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_index WHERE seq IN (2, 5)"))
        conn.execute(text("UPDATE audit_index SET actor = 'x' WHERE seq = 3"))
    assert first_mismatch(engine) == 2
    assert rebuild(engine) == 6
    assert first_mismatch(engine) is None and log.verify().ok
