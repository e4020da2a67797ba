"""Decision state after a grant change, with 100,000 active grants (10,000 quick).

Subject: ``Decider.snapshot`` at the new state versions after one grant is added, the
way the next request after a change sees it (its versions come with its API key).

- rebuild: the time from the changed versions to the decision state the next request
  decides on, median of 5 changes.
- reads during a rebuild: the longest a cached decision at the old versions waits
  while another thread builds the new state (the target: reads never wait on it).

Baseline: none (the target is absolute, 50 ms).
"""

from __future__ import annotations

import functools
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bench.common import DATA_DIR, Result, Target, quick
from gateway.access.decisions import Decider
from gateway.access.grants import add_grant
from gateway.access.policy_runtime import PolicyRuntime
from gateway.access.principals import Caller, authenticate
from gateway.demo.workspace import SURGICAL_PURPOSE, create_workspace
from gateway.state.database import bump_version, create_state_engine, read_versions
from gateway.state.models import Grant

CHANGES = 5


def _fill(engine: object, count: int) -> None:
    """``count`` active grants spread over 1,000 subjects of the imaging module."""
    created = datetime.now(UTC)
    rows = [
        dict(
            subject_type="principal",
            subject=f"bulk{i % 1000}",
            module="imaging",
            dataset="studies",
            profile="anonymized",
            purpose=SURGICAL_PURPOSE,
            status="active",
            approvals=1,
            created_by="bench",
            created_at=created,
            expires_at=created + timedelta(days=30),
        )
        for i in range(count)
    ]
    with engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(insert(Grant), rows)
        bump_version(conn, "grants")


def _read_until(decide: Callable[[], object], done: threading.Event, took: list[float]) -> None:
    """Decide again and again until ``done``, recording how long each decision took."""
    while not done.is_set():
        started = time.perf_counter()
        decide()  # the caller's old versions: a cached decision
        took.append(time.perf_counter() - started)
        time.sleep(0.0005)


def run() -> list[Result]:
    count = 10_000 if quick() else 100_000
    workspace = create_workspace(Path(DATA_DIR) / "decisions_grants", port=8787, reset=True)
    config = workspace.config
    engine = create_state_engine(config.state_url)
    _fill(engine, count)
    decider = Decider(engine, config, PolicyRuntime(config).evaluator)
    at = datetime.now(UTC)
    decider.snapshot(None, at)
    rebuilds, waits = [], []
    for _ in range(CHANGES):
        # Requests in flight were authenticated at the versions in force before the change.
        caller = authenticate(engine, workspace.tokens["mei"])
        assert isinstance(caller, Caller)
        decide = functools.partial(
            decider.decide, caller=caller, dataset="patients", at=at, purpose=SURGICAL_PURPOSE
        )
        decide()
        add_grant(
            engine,
            config,
            subject_type="principal",
            subject="erin",
            dataset="studies",
            profile="pseudonymized",
            days=30,
            created_by="bench",
        )
        with engine.connect() as conn:
            versions = read_versions(conn)
        done = threading.Event()
        longest: list[float] = []
        thread = threading.Thread(target=_read_until, args=(decide, done, longest))
        thread.start()
        time.sleep(0.01)
        started = time.perf_counter()
        decider.snapshot(versions, at)
        rebuilds.append(time.perf_counter() - started)
        done.set()
        thread.join()
        waits.append(max(longest))
    engine.dispose()
    note = f"{count} active grants, median of {CHANGES} changes"
    return [
        Result(
            "decisions_grants.rebuild_after_change",
            statistics.median(rebuilds) * 1e3,
            "ms",
            target=Target("value", "<=", 50.0, "ms"),
            note=note,
            row="grant_change",
        ),
        Result(
            "decisions_grants.longest_read_during_rebuild",
            max(waits) * 1e3,
            "ms",
            note="a cached decision at the old versions, on another thread",
            row="grant_change",
        ),
    ]


if __name__ == "__main__":
    from bench.common import print_table

    print_table(run())
