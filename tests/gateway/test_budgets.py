"""Budgets are charged atomically: concurrent requests can never overspend."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gateway.access import budgets
from gateway.errors import BudgetExhausted
from gateway.state.database import create_state_engine, migrate

CAP = 50


def spend_concurrently(url: str, threads: int = 8, attempts: int = 20) -> tuple[int, float]:
    engine = create_state_engine(url)
    migrate(engine)
    charges = [
        budgets.Charge("grant:1:rows", "total", 1, CAP, "rows in total"),
        budgets.Charge("org:x:epsilon", "total", 0.1, CAP / 10, "org epsilon"),
    ]
    granted = 0
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker() -> None:
        nonlocal granted
        start.wait()
        for _ in range(attempts):
            try:
                budgets.charge(engine, charges)
            except BudgetExhausted:
                continue
            with lock:
                granted += 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    left = budgets.remaining(engine, charges)
    engine.dispose()
    return granted, left["org epsilon"] or 0.0


@pytest.mark.pg
def test_concurrent_charges_never_overspend_on_postgres(pg_schema_url: str):
    granted, epsilon_left = spend_concurrently(pg_schema_url)
    assert granted == CAP
    assert epsilon_left == pytest.approx(0.0, abs=1e-6)


def test_concurrent_charges_never_overspend_on_sqlite(tmp_path: Path):
    granted, _ = spend_concurrently(f"sqlite:///{tmp_path / 'state.db'}")
    assert granted == CAP


def test_a_refused_charge_changes_no_account(tmp_path: Path):
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    ok = budgets.Charge("a", "total", 5, 10, "a")
    short = budgets.Charge("b", "total", 5, 3, "b")
    with pytest.raises(BudgetExhausted) as refused:
        budgets.charge(engine, [ok, short])
    assert refused.value.extensions["budget"] == "b"
    assert budgets.remaining(engine, [ok, short]) == {"a": 10, "b": 3}
    budgets.charge(engine, [ok])
    budgets.refund(engine, [ok.with_amount(2)])
    assert budgets.remaining(engine, [ok]) == {"a": 7}
    engine.dispose()
