"""Arrow Flight end to end: a real ``kiteline serve`` with Flight on, a real Flight client.

Every Flight read is the HTTP read: the same decision, the same rows, the same audit
events and the same budgets; tickets are bound to their caller and expire.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from gateway.access.budgets import set_limits
from gateway.access.grants import add_grant
from gateway.access.principals import add_principal, issue_key
from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from gateway.state.database import create_state_engine
from tests.conftest import copy_workspace
from tests.serving import free_port, serving

pytestmark = pytest.mark.slow

ARROW = "application/vnd.apache.arrow.stream"
COLUMNS = ["patient_id", "birth_date", "gender", "diagnosis"]


def enable_flight(config: Path, port: int, ttl_s: float = 60) -> None:
    with config.open("a", encoding="utf-8") as handle:
        handle.write(f"flight:\n  enabled: true\n  listen: 127.0.0.1:{port}\n")
        handle.write(f"  ticket_ttl_s: {ttl_s}\n")


def seed(workspace: Workspace) -> dict[str, str]:
    """A partner-less employee with a 100-row budget on patients."""
    config = workspace.config
    engine = create_state_engine(config.state_url)
    try:
        add_principal(engine, name="bud", kind="employee", org=None)
        token = issue_key(engine, "bud")[1]
        grant = add_grant(
            engine,
            config,
            subject_type="principal",
            subject="bud",
            dataset="patients",
            profile="anonymized",
            days=30,
            created_by="test",
            approvals=1,
        )
        set_limits(engine, grant, rows_total=100)
    finally:
        engine.dispose()
    return {**workspace.tokens, "bud": token}


@pytest.fixture(scope="module")
def world(demo_template: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("flight")
    workspace = copy_workspace(demo_template, root / "ws")
    tokens = seed(workspace)
    port = free_port()
    enable_flight(workspace.config_path, port)
    with serving(workspace.config_path) as url:
        yield {
            "url": url,
            "flight": f"grpc+tcp://127.0.0.1:{port}",
            "tokens": tokens,
            "workspace": workspace,
        }


def options(world: dict, who: str | None) -> flight.FlightCallOptions:
    headers = [] if who is None else [(b"authorization", f"Bearer {world['tokens'][who]}".encode())]
    return flight.FlightCallOptions(headers=headers, timeout=60)


def command(dataset: str, query: dict[str, Any]) -> flight.FlightDescriptor:
    return flight.FlightDescriptor.for_command(orjson.dumps({"dataset": dataset, "query": query}))


def ticket_for(world: dict, who: str, query: dict[str, Any], dataset: str = "patients") -> bytes:
    with flight.connect(world["flight"]) as client:
        info = client.get_flight_info(command(dataset, query), options(world, who))
    assert len(info.endpoints) == 1
    return bytes(info.endpoints[0].ticket.ticket)


def flight_read(
    world: dict, who: str, query: dict[str, Any], dataset: str = "patients"
) -> pa.Table:
    ticket = ticket_for(world, who, query, dataset)
    with flight.connect(world["flight"]) as client:
        return client.do_get(flight.Ticket(ticket), options(world, who)).read_all()


def http_read(world: dict, who: str, query: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {world['tokens'][who]}", "Accept": ARROW}
    return httpx.post(
        f"{world['url']}/v1/datasets/patients/query", json=query, headers=headers, timeout=60
    )


def events(world: dict, **filters: str) -> list[dict]:
    headers = {"Authorization": f"Bearer {world['tokens']['victor']}"}
    found = httpx.get(f"{world['url']}/v1/audit/events", params=filters, headers=headers)
    assert found.status_code == 200, found.text
    # Oldest first, whatever order the search answers in.
    return sorted(found.json()["events"], key=lambda e: e["seq"])


def problem(exc: flight.FlightError) -> dict:
    return dict(json.loads(exc.extra_info))


@pytest.mark.parametrize("limit", [50, 5000])
def test_a_flight_read_returns_the_rows_of_the_same_http_read(world: dict, limit: int):
    query = {"columns": COLUMNS, "limit": limit, "purpose": SURGICAL_PURPOSE}
    table = flight_read(world, "mei", query)
    response = http_read(world, "mei", query)
    assert response.status_code == 200, response.text
    over_http = pa.ipc.open_stream(response.content).read_all()
    assert table.num_rows == limit
    assert table.column_names == COLUMNS
    # The same recipient: pseudonyms and generalized values are identical.
    assert table.equals(over_http)
    assert not table["patient_id"][0].as_py().isdigit()


def test_a_flight_read_is_audited_as_a_read_with_its_ticket(world: dict):
    query = {"columns": ["gender"], "limit": 3000, "purpose": SURGICAL_PURPOSE}
    table = flight_read(world, "mei", query)
    tickets = events(world, action="flight.ticket", actor="mei")
    assert tickets and tickets[-1]["decision"] == "allow"
    assert "ticket" not in tickets[-1] and len(tickets[-1]["ticket_sha256"]) == 64
    reads = events(world, action="data.read", actor="mei")
    last = reads[-1]
    assert last["rows"] == table.num_rows == 3000
    assert last["complete"] is True and last["digest"].startswith("sha256:")
    queries = events(world, action="data.query", actor="mei")
    assert queries[-1]["seq"] == last["query_seq"]
    assert queries[-1]["media_type"] == ARROW


def test_a_caller_without_a_grant_is_refused_and_the_denial_audited(world: dict):
    with pytest.raises(flight.FlightUnauthorizedError) as refused:
        ticket_for(world, "sam", {"limit": 5})
    assert problem(refused.value)["type"] == "access-denied"
    denials = events(world, action="data.denied", actor="sam")
    assert denials and denials[-1]["attempted"] == "flight.ticket"
    assert denials[-1]["dataset"] == "patients"


def test_a_hidden_column_is_refused_as_over_http(world: dict):
    query = {"columns": ["name"], "limit": 5, "purpose": SURGICAL_PURPOSE}
    with pytest.raises(flight.FlightUnauthorizedError):
        ticket_for(world, "mei", query)
    assert http_read(world, "mei", query).status_code == 403


@pytest.mark.parametrize("token", [None, "kl_not_a_key"])
def test_a_missing_or_wrong_token_is_refused(world: dict, token: str | None):
    headers = [] if token is None else [(b"authorization", f"Bearer {token}".encode())]
    call = flight.FlightCallOptions(headers=headers, timeout=30)
    with flight.connect(world["flight"]) as client:
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.get_flight_info(command("patients", {"limit": 5}), call)
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.do_get(flight.Ticket(b"anything"), call).read_all()
    assert events(world, action="auth.failed")


def test_a_tampered_ticket_is_refused(world: dict):
    ticket = bytearray(ticket_for(world, "mei", {"limit": 5, "purpose": SURGICAL_PURPOSE}))
    # Ask for more rows than the ticket's query: the signature no longer matches.
    tampered = bytes(ticket).replace(b'"q":"', b'"q":"x', 1)
    with flight.connect(world["flight"]) as client:
        for forged in (tampered, bytes(ticket[:-1]) + bytes([ticket[-1] ^ 1]), b"short"):
            with pytest.raises(flight.FlightServerError) as refused:
                client.do_get(flight.Ticket(forged), options(world, "mei")).read_all()
            assert problem(refused.value)["type"] == "invalid-request"
    rejected = events(world, action="request.rejected", actor="mei")
    assert rejected and rejected[-1]["attempted"] == "flight.get"


def test_a_ticket_used_by_another_caller_is_refused(world: dict):
    ticket = ticket_for(world, "mei", {"limit": 5, "purpose": SURGICAL_PURPOSE})
    with flight.connect(world["flight"]) as client:
        with pytest.raises(flight.FlightUnauthorizedError) as refused:
            client.do_get(flight.Ticket(ticket), options(world, "lin")).read_all()
    assert "another caller" in problem(refused.value)["detail"]


def test_a_flight_read_charges_the_row_budget_as_http_does(world: dict):
    first = flight_read(world, "bud", {"columns": ["gender"], "limit": 80})
    assert first.num_rows == 80
    # 100 rows in all: HTTP gets what Flight left, and then nothing is left for either.
    second = http_read(world, "bud", {"columns": ["gender"], "limit": 80})
    assert second.status_code == 200
    assert pa.ipc.open_stream(second.content).read_all().num_rows == 20
    with pytest.raises(flight.FlightUnauthorizedError) as spent:
        flight_read(world, "bud", {"columns": ["gender"], "limit": 80})
    assert problem(spent.value)["type"] == "budget-exhausted"


def test_an_invalid_command_is_refused_clearly(world: dict):
    bad = flight.FlightDescriptor.for_command(b"not json")
    with flight.connect(world["flight"]) as client:
        with pytest.raises(flight.FlightServerError) as refused:
            client.get_flight_info(bad, options(world, "mei"))
        assert "Flight command must be JSON" in str(refused.value)
        with pytest.raises(flight.FlightServerError) as invalid:
            client.get_flight_info(command("patients", {"limit": "10"}), options(world, "mei"))
        assert problem(invalid.value)["type"] == "invalid-request"


def test_an_expired_ticket_is_refused(demo_template: Workspace, tmp_path: Path):
    workspace = copy_workspace(demo_template, tmp_path / "ws")
    port = free_port()
    enable_flight(workspace.config_path, port, ttl_s=0.5)
    with serving(workspace.config_path) as url:
        world = {"url": url, "flight": f"grpc+tcp://127.0.0.1:{port}", "tokens": workspace.tokens}
        ticket = ticket_for(world, "mei", {"limit": 5, "purpose": SURGICAL_PURPOSE})
        time.sleep(1.0)
        with flight.connect(world["flight"]) as client:
            with pytest.raises(flight.FlightServerError) as refused:
                client.do_get(flight.Ticket(ticket), options(world, "mei")).read_all()
        assert "expired" in problem(refused.value)["detail"]


def test_flight_is_off_by_default(demo_template: Workspace, tmp_path: Path):
    workspace = copy_workspace(demo_template, tmp_path / "ws")
    assert "flight" not in workspace.config_path.read_text()
    assert workspace.config.flight.enabled is False
    with serving(workspace.config_path):
        with socket.socket() as probe:
            probe.settimeout(2)
            assert probe.connect_ex(("127.0.0.1", 8815)) != 0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  listen: 0.0.0.0:8815\n", "must be a loopback address"),
        ("  listen: 127.0.0.1\n", "must be host:port"),
        ("  ticket_ttl_s: 0\n", "greater than 0"),
    ],
)
def test_the_flight_section_is_validated_clearly(
    demo_template: Workspace, tmp_path: Path, section: str, message: str
):
    from gateway.config import ConfigError, load_config

    workspace = copy_workspace(demo_template, tmp_path / "ws")
    with workspace.config_path.open("a", encoding="utf-8") as handle:
        handle.write("flight:\n  enabled: true\n" + section)
    with pytest.raises(ConfigError) as refused:
        load_config(workspace.config_path)
    assert any("flight." in p and message in p for p in refused.value.problems), refused.value


def test_serve_refuses_flight_with_several_workers(demo_template: Workspace, tmp_path: Path):
    import subprocess
    import sys

    workspace = copy_workspace(demo_template, tmp_path / "ws")
    enable_flight(workspace.config_path, free_port())
    command = [sys.executable, "-m", "gateway.cli", "--config", str(workspace.config_path)]
    done = subprocess.run(
        [*command, "serve", "--port", str(free_port()), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--workers 1" in done.stderr


class _Connected:
    """The part of a Flight call context a stream asks: the client is still there."""

    def is_cancelled(self) -> bool:
        return False


def test_a_stream_dropped_before_its_first_batch_still_ends_the_read(
    demo_template: Workspace, tmp_path: Path
) -> None:
    # Flight may drop a DoGet stream without pulling a batch (the client left at once):
    # the read is still closed by a data.read event, marked incomplete.
    from gateway.auditing.log import RequestMeta
    from gateway.config import Settings
    from gateway.flight.server import GovernedBatches
    from gateway.http.app import create_app

    workspace = copy_workspace(demo_template, tmp_path / "ws")
    gateway = create_app(Settings(config=workspace.config_path)).state.gateway
    try:
        meta = RequestMeta(request_id="flight-dropped", client="127.0.0.1", user_agent="test")
        caller = gateway.authenticate(f"Bearer {workspace.tokens['mei']}", meta)
        body = orjson.dumps({"purpose": SURGICAL_PURPOSE, "limit": 5000})
        result = gateway.read(caller, "patients", body, ARROW, meta)
        stream = GovernedBatches(result, _Connected(), meta)  # type: ignore[arg-type]
        stream.open()
        batches = stream.started()  # what do_get hands to Flight
        del batches
    finally:
        gateway.close()
    with sqlite3.connect(workspace.root / "state.db") as connection:
        bodies = connection.execute("SELECT body FROM audit_events ORDER BY seq").fetchall()
    reads = [e for e in map(json.loads, (b for (b,) in bodies)) if e["action"] == "data.read"]
    closing = reads[-1]
    assert closing["complete"] is False
    assert closing["rows"] == 0
