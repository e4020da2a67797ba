"""Fault drills: a dependency fails under load; every answer is a 503 problem within the
configured bound (never a 500), health checks keep answering, readiness says so, and
no 200 leaves without its audit event."""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest
from sqlalchemy import event

from gateway.config import load_config
from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace, seed_state
from tests.conftest import bearer, client_for, copy_workspace
from tests.gateway.test_api import audit_rows
from tests.reliability.servers import UNLIMITED, Proxy, configure, serving

READ = orjson.dumps(
    {"columns": ["patient_id", "diagnosis"], "limit": 5, "purpose": SURGICAL_PURPOSE}
)
GRANT = {"dataset": "patients", "profile": "anonymized", "days": 7, "purpose": SURGICAL_PURPOSE}
# The drills run with one-second bounds. A failed read waits several times in turn (its
# row budget, its query record, the budget's refund, the failure's record), and queued
# audit appends wait for the leader before them; one deadline per request, set at the
# edge, bounds all of them together: the timeout, and a margin for a loaded machine.
TIMEOUTS = "  audit_timeout_s: 1.0\n  state_timeout_s: 1.0\n"
BOUND_S = 2.5


@dataclass
class Tally:
    answers: list[tuple[int, float, str, str]] = field(default_factory=list)  # status, s, id, what
    lock: threading.Lock = field(default_factory=threading.Lock)

    def statuses(self) -> set[int]:
        return {a[0] for a in self.answers}

    def served(self) -> list[str]:
        return [a[2] for a in self.answers if a[0] < 300]


def mixed_load(base: str, ws: Workspace, stop: threading.Event, tally: Tally, number: int) -> None:
    """Reads, grant requests and listings, and audit searches, until ``stop``."""
    requests = [
        ("mei", "POST", "/v1/datasets/patients/query", {"content": READ}),
        ("lin", "POST", "/v1/grants", {"json": GRANT}),
        ("mei", "GET", "/v1/grants", {}),
        ("victor", "GET", "/v1/audit/events", {"params": {"limit": "5"}}),
    ]
    with httpx.Client(base_url=base, timeout=15) as http:
        i = 0
        while not stop.is_set():
            who, method, path, kwargs = requests[(number + i) % len(requests)]
            i += 1
            request_id = f"drill-{number}-{i:06d}"
            headers = {**bearer(ws, who), "X-Request-ID": request_id}
            started = time.monotonic()
            try:
                response = http.request(method, path, headers=headers, **kwargs)
            except httpx.HTTPError:
                continue
            elapsed = time.monotonic() - started
            if response.status_code >= 400:
                assert response.headers["content-type"] == "application/problem+json"
            with tally.lock:
                tally.answers.append((response.status_code, elapsed, request_id, path))


def run_load(base: str, ws: Workspace, seconds: float, threads: int = 8) -> Tally:
    tally, stop = Tally(), threading.Event()
    with ThreadPoolExecutor(threads) as pool:
        for n in range(threads):
            pool.submit(mixed_load, base, ws, stop, tally, n)
        time.sleep(seconds)
        stop.set()
    return tally


def timed_get(url: str) -> tuple[int, float]:
    started = time.monotonic()
    status = httpx.get(url, timeout=10).status_code
    return status, time.monotonic() - started


@pytest.mark.slow
def test_a_sqlite_lock_held_by_another_process_is_a_503_and_health_answers(
    workspace: Workspace,
):
    configure(workspace, UNLIMITED.removeprefix("gateway:\n") + TIMEOUTS)
    with serving(workspace) as base:
        before = run_load(base, workspace, 1.0)
        assert before.statuses() <= {200, 201, 400, 409}, before.statuses()
        locker = sqlite3.connect(workspace.root / "state.db", isolation_level=None, timeout=0)
        locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            tally, stop = Tally(), threading.Event()
            with ThreadPoolExecutor(8) as pool:
                for n in range(8):
                    pool.submit(mixed_load, base, workspace, stop, tally, n)
                time.sleep(1.0)
                # Eight requests wait on the lock; the event loop does not.
                health, health_s = timed_get(base + "/healthz")
                ready, _ = timed_get(base + "/readyz")
                time.sleep(2.0)
                stop.set()
        finally:
            locker.rollback()
            locker.close()
        assert (health, ready) == (200, 503)
        assert health_s < 0.5, health_s
        assert 500 not in tally.statuses(), tally.answers
        assert 503 in tally.statuses()
        slowest = max((a for a in tally.answers if a[0] == 503), key=lambda a: a[1])
        assert slowest[1] < BOUND_S, slowest
        after = run_load(base, workspace, 1.0)
        assert 200 in after.statuses() and 503 not in after.statuses()
        assert timed_get(base + "/readyz")[0] == 200
    recorded = {e["request_id"] for e in audit_rows(workspace)}
    for tallied in (before, tally, after):
        missing = [rid for rid in tallied.served() if rid not in recorded]
        assert not missing, f"served without an audit event: {missing[:5]}"


@pytest.mark.slow
@pytest.mark.pg
def test_postgresql_refusing_connections_mid_load_is_a_503_never_a_500(
    demo_template: Workspace, tmp_path: Path, pg_schema_url: str
):
    proxy = Proxy(("127.0.0.1", 5432))
    proxy.accept()
    via_proxy = pg_schema_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}", 1)
    assert via_proxy != pg_schema_url
    copied = copy_workspace(demo_template, tmp_path / "ws")
    text = copied.config_path.read_text(encoding="utf-8")
    copied.config_path.write_text(
        text.replace("state_url: sqlite:///state.db", f'state_url: "{via_proxy}"', 1)
    )
    workspace = Workspace(
        copied.root, copied.config_path, seed_state(load_config(copied.config_path))
    )
    configure(workspace, UNLIMITED.removeprefix("gateway:\n") + TIMEOUTS)
    try:
        with serving(workspace) as base:
            tally, stop = Tally(), threading.Event()
            with ThreadPoolExecutor(8) as pool:
                for n in range(8):
                    pool.submit(mixed_load, base, workspace, stop, tally, n)
                time.sleep(1.5)
                proxy.refuse()  # the database goes away mid-load
                time.sleep(1.0)
                health, health_s = timed_get(base + "/healthz")
                ready, _ = timed_get(base + "/readyz")
                time.sleep(1.5)
                proxy.accept()  # and comes back
                time.sleep(3.0)
                stop.set()
            assert (health, ready) == (200, 503)
            assert health_s < 0.5, health_s
            assert 500 not in tally.statuses(), [a for a in tally.answers if a[0] == 500][:5]
            assert 503 in tally.statuses()
            slowest = max((a for a in tally.answers if a[0] == 503), key=lambda a: a[1])
            assert slowest[1] < BOUND_S, slowest
            # Served again once the database is back.
            last = [a[0] for a in tally.answers[-20:]]
            assert 200 in last, last
    finally:
        proxy.refuse()
    with psycopg.connect(pg_schema_url) as conn:
        recorded = {
            r[0] for r in conn.execute("SELECT body::json->>'request_id' FROM audit_events")
        }
    missing = [rid for rid in tally.served() if rid not in recorded]
    assert not missing, f"served without an audit event: {missing[:5]}"


def test_disk_full_is_a_503_and_not_ready(workspace: Workspace):
    """SQLite's page limit stands in for a full disk: every write fails with SQLITE_FULL."""
    with client_for(workspace) as client:
        gateway = client.app.state.gateway  # type: ignore[attr-defined]
        assert client.get("/readyz").status_code == 200
        with sqlite3.connect(workspace.root / "state.db") as conn:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]

        def full(dbapi_connection: sqlite3.Connection, _record: object) -> None:
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

        event.listen(gateway.engine, "connect", full)
        gateway.engine.dispose()  # every connection from now on is "full"
        gateway.audit._drop_writer_connection()
        # Writes fit in the file's free pages for a while, then the "disk" is full.
        answers: list[tuple[int, str]] = []
        for _ in range(20):
            for who, body in (("mei", None), ("lin", GRANT)):
                response = (
                    client.post("/v1/grants", json=body, headers=bearer(workspace, who))
                    if body
                    else client.post(
                        "/v1/datasets/patients/query", content=READ, headers=bearer(workspace, who)
                    )
                )
                answers.append((response.status_code, response.headers["x-request-id"]))
            if answers[-1][0] == 503 and answers[-2][0] == 503:
                break
        statuses = {status for status, _ in answers}
        assert 500 not in statuses and 503 in statuses, answers
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
        event.remove(gateway.engine, "connect", full)
        gateway.engine.dispose()
        gateway.audit._drop_writer_connection()
        reads = [
            client.post(
                "/v1/datasets/patients/query", content=READ, headers=bearer(workspace, "mei")
            ).status_code
            for _ in range(2)
        ]
        assert reads[-1] == 200, reads
        assert client.get("/readyz").status_code == 200
    recorded = {e["request_id"] for e in audit_rows(workspace)}
    assert all(rid in recorded for status, rid in answers if status < 300)


def test_a_stalled_policy_engine_is_a_503_within_its_timeout(workspace: Workspace):
    with client_for(workspace) as client:
        evaluator = client.app.state.gateway.decider  # type: ignore[attr-defined]
        rego = client.app.state.gateway.policy.evaluator  # type: ignore[attr-defined]
        # A job queue no worker reads: every evaluation waits out the engine's timeout.
        # The packaged policy is answered in Python first; off, every decision asks Rego.
        rego.enabled = False
        rego._workers._jobs = queue.SimpleQueue()
        del evaluator
        started = time.monotonic()
        response = client.post(
            "/v1/datasets/patients/query", content=READ, headers=bearer(workspace, "mei")
        )
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert elapsed < 0.5 + 1.5, elapsed
        [event_] = [
            e for e in audit_rows(workspace) if e["request_id"] == response.headers["x-request-id"]
        ]
        assert event_["decision"] == "deny"
