"""Concurrent approvals on a real PostgreSQL: one active grant, an exact count."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.access.grant_requests import GrantRequestBody
from gateway.access.principals import Caller, authenticate
from gateway.auditing.log import RequestMeta
from gateway.config import load_config
from gateway.demo.workspace import Workspace, seed_state
from gateway.errors import Conflict
from gateway.service import Gateway
from gateway.state.models import Grant, GrantApproval, GrantEvent
from tests.conftest import copy_workspace

pytestmark = pytest.mark.pg

META = RequestMeta(request_id="concurrency-test")


@pytest.fixture
def pg_gateway(
    demo_template: Workspace, tmp_path: Path, pg_schema_url: str
) -> Iterator[tuple[Gateway, dict[str, Caller]]]:
    ws = copy_workspace(demo_template, tmp_path / "ws")
    text = ws.config_path.read_text().replace("sqlite:///state.db", pg_schema_url)
    ws.config_path.write_text(text)
    config = load_config(ws.config_path)
    tokens = seed_state(config)
    gateway = Gateway.from_config(config)
    callers = {name: authenticate(gateway.engine, token) for name, token in tokens.items()}
    assert all(isinstance(c, Caller) for c in callers.values())
    yield gateway, callers  # type: ignore[misc]
    gateway.close()


def at_once(*actions: Callable[[], Any]) -> list[Any]:
    """Run the actions in threads released together; each result or exception is kept."""
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = actions[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def state(gateway: Gateway, grant_id: int) -> tuple[str, int, int, int]:
    with gateway.engine.connect() as conn:
        status, approvals = conn.execute(
            select(Grant.status, Grant.approvals).where(Grant.id == grant_id)
        ).one()
        rows = conn.scalar(
            select(func.count())
            .select_from(GrantApproval)
            .where(GrantApproval.grant_id == grant_id)
        )
        activations = conn.scalar(
            select(func.count())
            .select_from(GrantEvent)
            .where(GrantEvent.grant_id == grant_id, GrantEvent.action == "activated")
        )
    return status, approvals, int(rows or 0), int(activations or 0)


def request(gateway: Gateway, caller: Caller, profile: str) -> int:
    body = GrantRequestBody(dataset="patients", profile=profile, days=5)  # type: ignore[arg-type]
    return int(gateway.grants.request(caller, body, META)["id"])


def approved_at_once(
    gateway: Gateway, who: dict[str, Caller], profile: str, *custodians: str
) -> tuple[int, list[Any]]:
    """A new request of erin's for ``profile``, and what each of the ``custodians``'
    approvals of it, all released at once, returned."""
    grant_id = request(gateway, who["erin"], profile)
    approvals = [partial(gateway.grants.approve, who[c], grant_id, "ok", META) for c in custodians]
    return grant_id, at_once(*approvals)


ROUNDS = 3


def test_two_custodians_at_once_make_one_active_grant(pg_gateway: Any):
    gateway, who = pg_gateway
    for _ in range(ROUNDS):
        # pseudonymized reads need one approval
        grant_id, results = approved_at_once(gateway, who, "pseudonymized", "alice", "bob")
        won = [r for r in results if isinstance(r, dict)]
        lost = [r for r in results if isinstance(r, Conflict)]
        assert len(won) == 1 and len(lost) == 1, results
        assert state(gateway, grant_id) == ("active", 1, 1, 1)


def test_concurrent_raw_approvals_count_exactly(pg_gateway: Any):
    gateway, who = pg_gateway
    for _ in range(ROUNDS):
        # raw reads need two approvals
        grant_id, results = approved_at_once(gateway, who, "raw", "alice", "alice", "bob")
        unexpected = [
            r for r in results if isinstance(r, Exception) and not isinstance(r, Conflict)
        ]
        assert not unexpected
        assert state(gateway, grant_id) == ("active", 2, 2, 1)
