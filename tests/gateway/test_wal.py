"""Write-ahead-log checkpoints of the SQLite state database run in their own thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from gateway.demo.workspace import Workspace
from gateway.state.database import create_state_engine
from gateway.state.wal import AUTOCHECKPOINT_PAGES, WalCheckpointer, uses_wal
from tests.conftest import client_for


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    yield engine
    engine.dispose()


def _commit_notes(engine: Engine, count: int) -> None:
    for _ in range(count):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO notes (body) VALUES (:body)"), {"body": "x" * 2000})


def _wal_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "kiteline-wal"}


def test_commits_leave_checkpoints_to_the_checkpointer(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == AUTOCHECKPOINT_PAGES
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_a_checkpoint_copies_the_log_and_the_log_then_starts_over(engine: Engine) -> None:
    checkpointer = WalCheckpointer(engine)
    _commit_notes(engine, 40)
    pages, copied = checkpointer.checkpoint()
    assert pages >= 40
    assert copied == pages
    # Fully copied and nobody reading it: the next commit writes from the log's start.
    _commit_notes(engine, 1)
    pages_after, copied_after = checkpointer.checkpoint()
    assert 0 < pages_after < pages
    assert copied_after == pages_after


def test_the_thread_checkpoints_until_stopped(engine: Engine) -> None:
    rounds = threading.Semaphore(0)

    class Counted(WalCheckpointer):
        def checkpoint(self) -> tuple[int, int]:
            done = super().checkpoint()
            rounds.release()
            return done

    others = _wal_threads()  # of servers other tests left running, if any
    checkpointer = Counted(engine, interval_s=0.01)
    checkpointer.start()
    try:
        (ours,) = _wal_threads() - others
        _commit_notes(engine, 40)
        # Rounds counted during the commits say nothing of the log after them; of two
        # rounds counted from now, the second began after the last commit.
        while rounds.acquire(blocking=False):
            pass
        assert rounds.acquire(timeout=10) and rounds.acquire(timeout=10)
    finally:
        checkpointer.stop()
    assert not ours.is_alive()
    # The log was copied whole, so this commit starts it over: without the thread's
    # checkpoints it would be page 41 or later.
    _commit_notes(engine, 1)
    with engine.connect() as conn:
        _busy, pages, _copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    assert pages < 40


def test_nothing_to_checkpoint_without_a_log_file() -> None:
    engine = create_engine("sqlite://")
    try:
        assert not uses_wal(engine)
        others = _wal_threads()
        checkpointer = WalCheckpointer(engine)
        checkpointer.start()
        assert _wal_threads() == others
        checkpointer.stop()
    finally:
        engine.dispose()


@pytest.mark.pg
def test_postgres_runs_no_checkpointer(pg_schema_url: str) -> None:
    engine = create_state_engine(pg_schema_url)
    try:
        assert not uses_wal(engine)
        others = _wal_threads()
        WalCheckpointer(engine).start()
        assert _wal_threads() == others
    finally:
        engine.dispose()


def test_the_server_checkpoints_while_it_runs(workspace: Workspace) -> None:
    others = _wal_threads()
    with client_for(workspace) as client:
        assert client.get("/healthz").status_code == 200
        (ours,) = _wal_threads() - others
    assert not ours.is_alive()
