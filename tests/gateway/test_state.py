"""The state suite: principals, keys, grants, decisions and the audit chain, on SQLite
and on a real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command as alembic_command
from sqlalchemy import Engine, event, text

from audit.logcheck import ExpectedHead, LogReport, verify_log
from audit.redaction import Redactor
from gateway.access.decisions import Decider
from gateway.access.grants import GrantError, add_grant, revoke_grant
from gateway.access.policy_runtime import PolicyRuntime
from gateway.access.principals import (
    Caller,
    PrincipalError,
    add_principal,
    authenticate,
    issue_key,
    revoke_key,
    set_status,
)
from gateway.auditing.log import AuditLog, RequestMeta
from gateway.auditing.search import EventFilter, search
from gateway.config import Config
from gateway.demo.workspace import Workspace
from gateway.state.database import alembic_config, create_state_engine, is_current, migrate
from tests.conftest import add_test_grant


@pytest.fixture
def config(demo_template: Workspace) -> Config:
    return demo_template.config


def test_migrations_are_idempotent(engine: Engine):
    migrate(engine)
    assert is_current(engine)


def test_keys_authenticate_until_revoked(engine: Engine):
    add_principal(engine, name="mei", kind="partner", org="surgibot")
    key_id, token = issue_key(engine, "mei")
    caller = authenticate(engine, token)
    assert isinstance(caller, Caller)
    assert (caller.name, caller.kind, caller.org, caller.org_status) == (
        "mei",
        "partner",
        "surgibot",
        "active",
    )
    assert caller.recipient == "org:surgibot"
    assert authenticate(engine, token[:-1] + ("A" if token[-1] != "A" else "B")) == "wrong secret"
    assert authenticate(engine, "kl_000000000000_" + "x" * 43) == "unknown key"
    assert authenticate(engine, "nonsense") == "malformed token"
    revoke_key(engine, key_id)
    assert authenticate(engine, token) == "revoked key"


def test_suspended_principal_cannot_authenticate(engine: Engine):
    add_principal(engine, name="erin", kind="employee")
    _, token = issue_key(engine, "erin")
    set_status(engine, "erin", "suspended")
    assert authenticate(engine, token) == "principal is suspended"


def test_principal_validation(engine: Engine):
    add_principal(engine, name="erin", kind="employee")
    with pytest.raises(PrincipalError, match="already exists"):
        add_principal(engine, name="erin", kind="employee")
    with pytest.raises(PrincipalError, match="needs an org"):
        add_principal(engine, name="pat", kind="partner")
    with pytest.raises(PrincipalError, match="kind must be"):
        add_principal(engine, name="pat", kind="god")
    with pytest.raises(PrincipalError, match="must match"):
        add_principal(engine, name="Robert'); DROP TABLE principals;--", kind="employee")


def test_only_a_hash_of_the_secret_is_stored(engine: Engine):
    add_principal(engine, name="erin", kind="employee")
    _, token = issue_key(engine, "erin")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT key_id, secret_hash FROM api_keys")).one()
    assert token.split("_", 2)[2] not in stored.secret_hash  # the secret may hold "_"
    assert stored.key_id in token


def test_grants_drive_decisions(engine: Engine, config: Config):
    add_principal(engine, name="mei", kind="partner", org="surgibot")
    add_principal(engine, name="erin", kind="employee")
    tokens = {name: issue_key(engine, name)[1] for name in ("mei", "erin")}

    def caller(name: str) -> Caller:
        # Every request authenticates afresh, reading the state versions with the key.
        found = authenticate(engine, tokens[name])
        assert isinstance(found, Caller)
        return found

    decider = Decider(engine, config, PolicyRuntime(config).evaluator)
    now = datetime.now(UTC)
    assert not decider.decide(caller=caller("erin"), dataset="patients", at=now).allowed
    grant = add_test_grant(
        engine, config, "erin", "pseudonymized", dataset="patients", days=1, approvals=1
    )
    decision = decider.decide(caller=caller("erin"), dataset="patients", at=now)
    assert decision.allowed and decision.obligations
    assert decision.obligations.profile == "pseudonymized"
    add_test_grant(
        engine,
        config,
        "surgibot",
        "anonymized",
        subject_type="org",
        module="imaging",
        purpose="p",
        days=1,
        approvals=2,
    )
    decision = decider.decide(caller=caller("mei"), dataset="studies", at=now, purpose="p")
    assert decision.allowed and decision.obligations
    assert decision.obligations.profile == "anonymized"
    assert not decider.decide(caller=caller("mei"), dataset="studies", at=now).allowed
    later = now + timedelta(days=2)
    expired = decider.decide(caller=caller("erin"), dataset="patients", at=later)
    assert not expired.allowed
    revoke_grant(engine, grant)
    assert not decider.decide(caller=caller("erin"), dataset="patients", at=now).allowed


def test_grant_validation(engine: Engine, config: Config):
    add_principal(engine, name="erin", kind="employee")
    for kwargs, message in [
        ({"dataset": "nope"}, "unknown dataset"),
        ({"module": "nope"}, "unknown module"),
        ({"dataset": "patients", "module": "crm"}, "belongs to module"),
        ({"dataset": "patients", "profile": "everything"}, "profile must be"),
        ({"dataset": "patients", "days": 0}, "days must be"),
        ({"dataset": "patients", "subject": "ghost"}, "unknown principal"),
        ({"dataset": "patients", "columns": ["nope"]}, "unknown column"),
    ]:
        args = {
            "subject_type": "principal",
            "subject": "erin",
            "profile": "anonymized",
            "days": 5,
            "created_by": "t",
            **kwargs,
        }
        with pytest.raises(GrantError, match=message):
            add_grant(engine, config, **args)  # type: ignore[arg-type]


def _audit(engine: Engine) -> AuditLog:
    return AuditLog(engine, Redactor(b"k" * 32), policy_version="test")


def test_audit_chain_appends_and_verifies(engine: Engine):
    log = _audit(engine)
    meta = RequestMeta("req-1", "127.0.0.1", "agent\n\x1b[31mred")
    seqs = [
        log.append("data.query", meta=meta, actor="mei", decision="allow", reasons=["because"])
        for _ in range(5)
    ]
    assert seqs == [1, 2, 3, 4, 5]
    report = log.verify()
    assert report.ok and report.events == 5
    # Control characters from clients are stored inert inside JSON strings.
    assert log.tail(1)[0]["user_agent"] == "agent\n\x1b[31mred"


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        (
            "UPDATE audit_events SET body = replace(body, 'allow', 'deny') WHERE seq = 3",
            "event 3 was edited",
        ),
        ("UPDATE audit_events SET actor = 'someone' WHERE seq = 2", "column 'actor' was edited"),
        ("DELETE FROM audit_events WHERE seq = 2", "event 2 is missing"),
        ("UPDATE audit_events SET seq = 99 WHERE seq = 1", "event 1 is missing"),
    ],
)
def test_audit_tampering_is_detected(engine: Engine, statement: str, problem: str):
    log = _audit(engine)
    for i in range(4):
        log.append("data.query", actor="mei", decision="allow", reasons=[f"r{i}"])
    with engine.begin() as conn:
        conn.execute(text(statement))
    report = log.verify()
    assert not report.ok
    assert problem in (report.problem or "")


def test_an_audit_search_reads_its_page_off_an_index_in_order(tmp_path: Path):
    # Newest first, filtered by one column: the index must deliver events in sequence
    # order, or every match is sorted to find a page (seconds in a large log).
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        migrate(engine)
        log = _audit(engine)
        for i in range(30):
            log.append("data.query", actor="mei" if i % 3 else "sam", decision="allow")
        statements: list[tuple[str, Any]] = []

        def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if statement.startswith("SELECT") and "audit_events.body" in statement:
                statements.append((statement, params))

        event.listen(engine, "before_cursor_execute", capture)
        first, cursor = search(engine, EventFilter(actor="mei"), limit=5)
        later, _ = search(engine, EventFilter(actor="mei"), limit=5, cursor=cursor)
        event.remove(engine, "before_cursor_execute", capture)
        assert [e["seq"] for e in first + later] == [30, 29, 27, 26, 24, 23, 21, 20, 18, 17]
        assert len(statements) == 2
        with engine.connect() as conn:
            for statement, params in statements:
                plan = " / ".join(
                    row[-1]
                    for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
                )
                assert "ix_audit_index_actor" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        engine.dispose()


def _chain(log: AuditLog) -> LogReport:
    """Verify's check of the chain alone: ``verify`` also checks the search index,
    which revisions before 0007 lack."""
    head = log.head()
    return verify_log(log.records(), head=ExpectedHead(head.size, head.chain_head))


def test_revision_0006_keeps_a_log_written_before_it(tmp_path: Path):
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        alembic_command.upgrade(alembic_config(engine), "0005")
        log = _audit(engine)
        for i in range(6):
            log.append("data.query", actor="mei", decision="allow", reasons=[f"r{i}"])
        before = log.tail(6)

        def seq_type() -> str:
            with engine.connect() as conn:
                columns = conn.exec_driver_sql("PRAGMA table_info(audit_events)").all()
            return next(str(c[2]) for c in columns if c[1] == "seq")

        assert seq_type() == "BIGINT"
        alembic_command.upgrade(alembic_config(engine), "0006")
        assert seq_type() == "INTEGER"
        assert log.tail(6) == before
        assert _chain(log).ok
        assert log.append("data.query", actor="mei", decision="allow") == 7
        with engine.connect() as conn:
            indexes = {r[1] for r in conn.exec_driver_sql("PRAGMA index_list(audit_events)")}
        assert "ix_audit_events_request_id" in indexes and len(indexes) == 7, indexes
        alembic_command.downgrade(alembic_config(engine), "0005")
        assert seq_type() == "BIGINT"
        report = _chain(log)
        assert report.ok and report.events == 7
    finally:
        engine.dispose()


def test_concurrent_appends_stay_gap_free(engine: Engine):
    log = _audit(engine)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(25):
                log.append("data.query", actor="t", decision="allow")
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    report = log.verify()
    assert report.ok and report.events == 100


@pytest.mark.pg
def test_two_gateways_share_one_chain_on_postgres(pg_schema_url: str):
    first, second = create_state_engine(pg_schema_url), create_state_engine(pg_schema_url)
    migrate(first)
    logs = [_audit(first), _audit(second)]

    def worker(log: AuditLog) -> None:
        for _ in range(30):
            log.append("data.query", actor="t", decision="allow")

    threads = [threading.Thread(target=worker, args=(log,)) for log in logs for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = logs[0].verify()
    assert report.ok and report.events == 120
    first.dispose()
    second.dispose()
