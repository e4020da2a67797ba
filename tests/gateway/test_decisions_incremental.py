"""Grant changes applied to the decision state equal a full load, on SQLite and PostgreSQL.

Random walks of grant changes (created, requested then approved, revoked, expired by
the sweep or by the clock, moved to another subject, deleted, limits set, use noted)
made through the state database, the way any gateway process or tool makes them; after
each step the decider's state, derived from the grant change log, is compared with the
state loaded in full at the same versions and moment.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select, text, update

from gateway.access import decisions
from gateway.access.budgets import set_limits
from gateway.access.decision_state import Snapshot, load_snapshot
from gateway.access.decisions import Decider
from gateway.access.grants import add_grant, revoke_grant
from gateway.access.policy_runtime import PolicyRuntime
from gateway.config import Config, load_config
from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace, seed_state
from gateway.state.database import create_state_engine, read_versions
from gateway.state.models import Grant, GrantChange, GrantLimits
from tests.conftest import copy_workspace

STEPS = 80
# Orgs and their members most of all: an org's grants count towards every member's
# separation rules, and its deny stands in for theirs.
SUBJECTS = [
    ("org", "surgibot"),
    ("org", "surgibot"),
    ("principal", "mei"),
    ("principal", "mei"),
    ("org", "stellar"),
    ("principal", "sam"),
    ("principal", "erin"),
    ("principal", "lin"),
    ("principal", "victor"),
]
TARGETS = [
    {"dataset": "patients"},
    {"dataset": "studies"},
    {"dataset": "annotations"},
    {"dataset": "customers"},
    {"module": "imaging"},
    {"module": "crm"},
    {"module": "labels"},
]
PROFILES = ["pseudonymized", "anonymized", "aggregate"]


def _state(snapshot: Snapshot) -> dict[str, Any]:
    """Everything a decision reads from a snapshot, comparable."""
    index = snapshot.grants
    casbin = snapshot.casbin._index
    assert casbin is not None
    return {
        "versions": snapshot.versions,
        "grants": {s: index.held_by(s) for s in index.subjects},
        "denies": snapshot.denies,
        "lines": snapshot.lines,
        "casbin": casbin._by_subject,
        "valid_until": snapshot.valid_until,
        "expiries": index._expiries,
    }


def _full(engine: Engine, config: Config, versions: tuple[int, ...], at: datetime) -> Snapshot:
    with engine.connect() as conn:
        assert read_versions(conn) == versions, "the state changed under the comparison"
        return load_snapshot(conn, versions, config.separation, at)


def _active(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(select(Grant.id).where(Grant.status == "active")))


def _step(
    rng: random.Random, engine: Engine, config: Config, at: datetime, created: list[int]
) -> str:
    """One random change to the grants; returns what it was, for the failure message.
    ``created`` collects the grants made here: only those have no history to delete."""
    active = _active(engine)
    action = rng.choice(
        ["create", "create", "request_approve", "revoke", "sweep", "clock", "move"]
        + ["delete", "limits", "use", "several"]
    )
    if action in ("revoke", "sweep", "move", "limits", "use") and not active:
        action = "create"
    if action == "delete" and not created:
        action = "create"
    if action in ("create", "request_approve", "several"):
        for _ in range(rng.randint(2, 6) if action == "several" else 1):
            subject_type, subject = rng.choice(SUBJECTS)
            grant_id = add_grant(
                engine,
                config,
                subject_type=subject_type,
                subject=subject,
                profile=rng.choice(PROFILES),
                days=rng.randint(1, 4),
                created_by="test",
                purpose=rng.choice([None, SURGICAL_PURPOSE]),
                approvals=rng.randint(0, 2),
                status="requested" if action == "request_approve" else "active",
                **rng.choice(TARGETS),
            )
            created.append(grant_id)
        if action == "request_approve":
            with engine.begin() as conn:
                conn.execute(
                    update(Grant)
                    .where(Grant.id == grant_id)
                    .values(status="active", approvals=2, activated_at=at)
                )
        return f"{action} {grant_id}"
    grant_id = rng.choice(created if action == "delete" else active)
    if action == "delete":
        created.remove(grant_id)
    if action == "revoke":
        revoke_grant(engine, grant_id)
    elif action == "sweep":
        with engine.begin() as conn:
            conn.execute(update(Grant).where(Grant.id == grant_id).values(status="expired"))
    elif action == "clock":
        # Expired by the clock before any sweep: no row changes, only time passes.
        with engine.begin() as conn:
            conn.execute(
                update(Grant)
                .where(Grant.id == grant_id)
                .values(expires_at=at + timedelta(minutes=rng.randint(1, 90)))
            )
    elif action == "move":
        subject_type, subject = rng.choice(SUBJECTS)
        with engine.begin() as conn:
            conn.execute(
                update(Grant)
                .where(Grant.id == grant_id)
                .values(subject_type=subject_type, subject=subject)
            )
    elif action == "delete":
        with engine.begin() as conn:
            conn.execute(delete(GrantLimits).where(GrantLimits.grant_id == grant_id))
            conn.execute(delete(Grant).where(Grant.id == grant_id))
    elif action == "limits":
        set_limits(engine, grant_id, rows_total=rng.randint(1, 1000))
    else:
        with engine.begin() as conn:
            conn.execute(update(Grant).where(Grant.id == grant_id).values(last_used_at=at))
    return f"{action} {grant_id}"


def _walk(engine: Engine, config: Config, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    decider = Decider(engine, config, PolicyRuntime(config).evaluator)
    at = datetime.now(UTC)
    decider.snapshot(None, at)
    full_loads: list[int] = []
    load = decisions.load_snapshot

    def counted(*args: Any, **kwargs: Any) -> Snapshot:
        full_loads.append(1)
        return load(*args, **kwargs)

    monkeypatch.setattr(decisions, "load_snapshot", counted)
    done: list[str] = []
    created: list[int] = []
    for _ in range(STEPS):
        done.append(_step(rng, engine, config, at, created))
        # The clock moves too, past some expiries: up to a day at a time.
        at += timedelta(minutes=rng.choice([0, 1, 30, 240, 1440]))
        derived = decider.snapshot(None, at)
        assert _state(derived) == _state(_full(engine, config, derived.versions, at)), done
    # Every step was applied from the change log; none fell back to a full load.
    assert full_loads == []


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_grant_changes_applied_equal_a_full_load_on_sqlite(
    workspace: Workspace, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_state_engine(workspace.config.state_url)
    try:
        _walk(engine, workspace.config, seed, monkeypatch)
    finally:
        engine.dispose()


@pytest.fixture
def pg_config(demo_template: Workspace, tmp_path: Path, pg_schema_url: str) -> Iterator[Config]:
    ws = copy_workspace(demo_template, tmp_path / "ws")
    ws.config_path.write_text(
        ws.config_path.read_text().replace("sqlite:///state.db", pg_schema_url)
    )
    config = load_config(ws.config_path)
    seed_state(config)
    yield config


@pytest.mark.pg
@pytest.mark.parametrize("seed", [1, 2])
def test_grant_changes_applied_equal_a_full_load_on_postgres(
    pg_config: Config, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_state_engine(pg_config.state_url)
    try:
        _walk(engine, pg_config, seed, monkeypatch)
    finally:
        engine.dispose()


def _logged(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(GrantChange.version, GrantChange.subject_type, GrantChange.subject)
            )
        ]


def _check_log(engine: Engine, config: Config) -> None:
    before = len(_logged(engine))
    grant_id = add_grant(
        engine,
        config,
        subject_type="principal",
        subject="erin",
        profile="anonymized",
        days=3,
        created_by="test",
        dataset="studies",
    )
    with engine.connect() as conn:
        version = read_versions(conn)[1]
    logged = _logged(engine)
    assert len(logged) == before + 1
    # Logged under a grants version the change bumped, no newer than the one in force.
    assert logged[-1][1:] == ("principal", "erin") and logged[-1][0] <= version
    # Noting a grant's use changes no decision: no log row, no new version.
    with engine.begin() as conn:
        conn.execute(update(Grant).where(Grant.id == grant_id).values(last_used_at=None))
    with engine.connect() as conn:
        assert read_versions(conn)[1] == version
    assert len(_logged(engine)) == before + 1
    # A move names both subjects.
    with engine.begin() as conn:
        conn.execute(
            update(Grant).where(Grant.id == grant_id).values(subject_type="org", subject="stellar")
        )
    assert {r[1:] for r in _logged(engine)[before + 1 :]} == {
        ("principal", "erin"),
        ("org", "stellar"),
    }
    with engine.connect() as conn:
        assert read_versions(conn)[1] > version


def test_the_triggers_log_changes_that_decide_on_sqlite(workspace: Workspace) -> None:
    engine = create_state_engine(workspace.config.state_url)
    try:
        _check_log(engine, workspace.config)
    finally:
        engine.dispose()


@pytest.mark.pg
def test_the_triggers_log_changes_that_decide_on_postgres(pg_config: Config) -> None:
    engine = create_state_engine(pg_config.state_url)
    try:
        _check_log(engine, pg_config)
        # TRUNCATE names no rows: the log asks for a full load.
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE grants CASCADE"))
        assert _logged(engine)[-1][1:] == (None, None)
    finally:
        engine.dispose()


def test_a_long_backlog_of_changes_is_loaded_in_full(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = workspace.config
    engine = create_state_engine(config.state_url)
    try:
        decider = Decider(engine, config, PolicyRuntime(config).evaluator)
        at = datetime.now(UTC)
        decider.snapshot(None, at)
        monkeypatch.setattr(decisions, "apply_grant_changes", None)
        monkeypatch.setattr("gateway.access.decision_state.MAX_CHANGES", 2)
        for _ in range(3):
            add_grant(
                engine,
                config,
                subject_type="principal",
                subject="erin",
                profile="anonymized",
                days=3,
                created_by="test",
                dataset="studies",
            )
        derived = decider.snapshot(None, at)
        assert _state(derived) == _state(_full(engine, config, derived.versions, at))
    finally:
        engine.dispose()
