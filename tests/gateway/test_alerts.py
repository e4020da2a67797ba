"""The alert engine keeps up with the audit log's commits, however many arrive."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from gateway.auditing.alerts import _STOP, EVALUATION_PAUSE_S, AlertEngine


class _Evaluator:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def observe(self, event: Mapping[str, Any]) -> list[Any]:
        self.seen.append(int(event["seq"]))
        return []


def _engine() -> tuple[AlertEngine, _Evaluator, threading.Thread]:
    # Only the evaluation loop: no audit log, no rules, no webhooks.
    engine = AlertEngine.__new__(AlertEngine)
    AlertEngine.__init__(engine, audit=None, rules=None)  # type: ignore[arg-type]
    evaluator = _Evaluator()
    engine._evaluator = evaluator  # type: ignore[assignment]
    thread = threading.Thread(target=engine._evaluate_loop, daemon=True)
    thread.start()
    return engine, evaluator, thread


def test_commits_arriving_faster_than_the_pause_are_all_evaluated_promptly():
    engine, evaluator, _ = _engine()
    commits = 300
    for seq in range(commits):
        engine.observe([{"seq": seq, "action": "data.read"}])
        time.sleep(0.0005)
    # One commit per pause would take commits * EVALUATION_PAUSE_S (15 s).
    assert engine.wait_idle(100 * EVALUATION_PAUSE_S)
    assert evaluator.seen == list(range(commits))


def test_alert_events_are_not_evaluated_again():
    engine, evaluator, _ = _engine()
    engine.observe([{"seq": 1, "action": "alert.repeated_denials"}, {"seq": 2, "action": "x"}])
    assert engine.wait_idle(2)
    assert evaluator.seen == [2]


def test_stop_is_not_kept_waiting_behind_a_backlog():
    engine, evaluator, thread = _engine()
    for seq in range(500):
        engine.observe([{"seq": seq, "action": "data.read"}])
    engine._events.put(_STOP)  # what stop() sends once the log no longer feeds it
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert evaluator.seen == list(range(500))
