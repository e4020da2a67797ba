"""Group commit's own mechanics: the wake-up each caller waits on, and the leader
gathering the callers its last batch woke."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine

from audit.redaction import Redactor
from gateway.auditing import log as log_module
from gateway.auditing.log import AuditLog
from gateway.auditing.wakeups import Wakeup


def test_a_wakeup_set_before_or_during_a_wait_wakes_it_and_stays_set():
    early = Wakeup()
    early.set()
    early.set()  # a second set (a promoted leader's own batch) does nothing
    assert early.wait(0) and early.wait(0) and early.is_set()
    late = Wakeup()
    assert not late.wait(0.01)
    threading.Timer(0.05, late.set).start()
    assert late.wait(5)
    assert late.wait(0)  # a second wait returns at once


def test_a_leader_waits_for_the_callers_its_last_batch_woke(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    log = AuditLog(engine, Redactor(b"k" * 32), policy_version="test", timeout_s=10)
    log.append("data.query", actor="warm")  # the writer's connection, outside the timing
    monkeypatch.setattr(log_module, "_GATHER_MAX_S", 5.0)
    log._last_batch, log._last_write_s = 10, 5.0  # as after a batch of ten
    batches: list[int] = []
    log.add_listener(lambda events: batches.append(len(events)))
    leader = threading.Thread(target=log.append, args=("data.query",), kwargs={"actor": "a"})
    leader.start()
    time.sleep(0.2)  # the leader is gathering, alone in the queue
    others = [
        threading.Thread(target=log.append, args=("data.query",), kwargs={"actor": f"b{n}"})
        for n in range(9)
    ]
    for thread in others:
        thread.start()
    for thread in [leader, *others]:
        thread.join(10)
    assert batches[0] >= 9 and sum(batches) == 10
    assert log.verify().ok
    log.close()


def test_a_lone_caller_does_not_wait_to_gather(engine: Engine, monkeypatch: pytest.MonkeyPatch):
    log = AuditLog(engine, Redactor(b"k" * 32), policy_version="test", timeout_s=10)
    monkeypatch.setattr(log_module, "_GATHER_MAX_S", 5.0)
    log.append("data.query", actor="a")
    log._last_write_s = 5.0  # a slow last batch, but of one event
    started = time.monotonic()
    log.append("data.query", actor="a")
    assert time.monotonic() - started < 2.0
    log.close()
