"""The server's timers: a job every interval, in its own thread, surviving failures."""

from __future__ import annotations

import threading

import pytest

from gateway.periodic import Periodic


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_a_failing_round_does_not_stop_the_timer(caplog: pytest.LogCaptureFixture) -> None:
    rounds = threading.Semaphore(0)
    calls = {"n": 0}

    def job() -> None:
        calls["n"] += 1
        rounds.release()
        if calls["n"] == 1:
            raise RuntimeError("first round fails")

    timer = Periodic("test-timer", 0.01, job)
    timer.start()
    timer.start()  # already running: still one thread
    try:
        assert len(_threads("test-timer")) == 1
        assert all(rounds.acquire(timeout=10) for _ in range(3))
    finally:
        timer.stop()
    assert _threads("test-timer") == []
    assert "test-timer: a round failed" in caplog.text
    settled = calls["n"]
    threading.Event().wait(0.05)
    assert calls["n"] == settled  # stopped means no further rounds


@pytest.mark.parametrize("interval_s", [0, -1])
def test_no_interval_means_no_timer(interval_s: float) -> None:
    timer = Periodic("test-idle", interval_s, lambda: None)
    timer.start()
    assert _threads("test-idle") == []
    timer.stop()
