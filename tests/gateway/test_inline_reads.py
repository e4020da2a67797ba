"""Small reads of warm local files run on the event loop; anything that would wait there
moves to a worker thread, and the attempt it abandons leaves nothing behind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from gateway.config import load_config
from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from tests.conftest import bearer, client_for
from tests.gateway.test_api import audit_rows
from tests.gateway.test_read_slots import place

PAGE = {"columns": ["patient_id", "birth_date", "diagnosis"], "limit": 20}


@pytest.fixture
def workspace(workspace: Workspace) -> Workspace:
    """The demo workspace with inline reads asked for (they are off by default)."""
    config = workspace.config_path
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("gateway:\n", "gateway:\n  inline_reads: true\n", 1), "utf-8")
    return workspace


def record_places(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Where each attempt of the service's read runs, in order."""
    gateway = client.app.state.gateway  # type: ignore[attr-defined]
    places: list[str] = []
    read: Callable[..., Any] = gateway.read

    def recorded(*args: Any, **kwargs: Any) -> Any:
        places.append(place())
        return read(*args, **kwargs)

    monkeypatch.setattr(gateway, "read", recorded)
    return places


def post(client: TestClient, workspace: Workspace, who: str, dataset: str, body: dict[str, Any]):
    return client.post(
        f"/v1/datasets/{dataset}/query", content=orjson.dumps(body), headers=bearer(workspace, who)
    )


def test_a_cold_read_moves_to_a_worker_and_the_next_runs_on_the_loop(
    client: TestClient, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
):
    places = record_places(client, monkeypatch)
    body = {**PAGE, "purpose": SURGICAL_PURPOSE}
    first = post(client, workspace, "mei", "patients", body)
    assert first.status_code == 200, first.text
    # The file was not loaded and its class index not built: tried, declined, redone.
    assert places == ["loop", "worker"]
    second = post(client, workspace, "mei", "patients", body)
    assert second.status_code == 200, second.text
    assert places == ["loop", "worker", "loop"]
    assert second.json()["rows"] == first.json()["rows"]

    # The declined attempt was neither audited nor charged: one query and one read each.
    actions = [e["action"] for e in audit_rows(workspace) if e.get("actor") == "mei"]
    assert actions == ["data.query", "data.read"] * 2
    today = "X-Kiteline-Rows-Remaining-Today"
    assert int(first.headers[today]) - int(second.headers[today]) == 20


def test_large_and_aggregate_reads_always_run_in_a_worker(
    client: TestClient, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
):
    places = record_places(client, monkeypatch)
    large = {"columns": ["study_id", "modality"], "limit": 5000}
    for _ in range(2):
        assert post(client, workspace, "erin", "studies", large).status_code == 200
    assert places == ["loop", "worker"] * 2
    del places[:]
    count = {"group_by": ["city"], "aggregates": [{"fn": "count"}], "purpose": "market analysis"}
    for _ in range(2):
        response = post(client, workspace, "sam", "customers", count)
        assert response.status_code == 200, response.text
    assert places == ["loop", "worker"] * 2


def test_inline_reads_can_be_switched_off(workspace: Workspace, monkeypatch: pytest.MonkeyPatch):
    config = workspace.config_path
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("inline_reads: true", "inline_reads: false", 1), "utf-8")
    with client_for(workspace) as client:
        places = record_places(client, monkeypatch)
        body = {**PAGE, "purpose": SURGICAL_PURPOSE}
        for _ in range(2):
            assert post(client, workspace, "mei", "patients", body).status_code == 200
    assert places == ["worker", "worker"]


def test_by_default_reads_never_run_on_the_event_loop(workspace: Workspace):
    # A read on the loop waits there for the state database (an audit commit behind a
    # SQLite lock), and then nothing else is served, /healthz included.
    config = workspace.config_path
    text = config.read_text(encoding="utf-8")
    assert load_config(config).reads_inline
    config.write_text(text.replace("  inline_reads: true\n", "", 1), "utf-8")
    assert not load_config(config).reads_inline
