"""The audit log over HTTP: receipts and proofs, checkpoints, search, export, hashing."""

from __future__ import annotations

import base64
import csv
import io

import orjson
import pytest
from fastapi.testclient import TestClient

from audit.checkpoints import Verifier
from audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from tests.conftest import bearer

PATIENT_QUERY = {"columns": ["patient_id", "diagnosis"], "limit": 3, "purpose": SURGICAL_PURPOSE}


def read(client: TestClient, ws: Workspace, who: str = "mei", body: object = PATIENT_QUERY):
    return client.post(
        "/v1/datasets/patients/query", content=orjson.dumps(body), headers=bearer(ws, who)
    )


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def test_a_partner_verifies_the_receipt_of_its_own_read_offline(
    client: TestClient, workspace: Workspace
):
    response = read(client, workspace)
    assert response.status_code == 200
    seq = int(response.headers["x-kiteline-audit-seq"])
    vkey = client.get("/v1/audit/public-key").json()["vkey"]
    receipt = client.get(f"/v1/audit/events/{seq}/proof", headers=bearer(workspace, "mei"))
    assert receipt.status_code == 200, receipt.text
    data = receipt.json()
    # Offline: only the receipt and the published key are needed.
    checkpoint = Verifier.from_vkey(vkey).verify(data["checkpoint"], origin="kiteline/audit")
    event = orjson.loads(data["body"])
    assert event["seq"] == seq and event["actor"] == "mei" and event["action"] == "data.query"
    verify_inclusion(
        leaf_hash(data["body"].encode()),
        seq - 1,
        checkpoint.tree_size,
        [b64(n) for n in data["proof"]],
        checkpoint.root_hash,
    )


def test_proofs_of_other_callers_events_are_refused_and_audited(
    client: TestClient, workspace: Workspace
):
    seq = int(read(client, workspace, "mei").headers["x-kiteline-audit-seq"])
    refused = client.get(f"/v1/audit/events/{seq}/proof", headers=bearer(workspace, "sam"))
    assert refused.status_code == 403
    missing = client.get("/v1/audit/events/999999/proof", headers=bearer(workspace, "sam"))
    assert missing.status_code == 403  # no hint whether the event exists
    officer = client.get(f"/v1/audit/events/{seq}/proof", headers=bearer(workspace, "victor"))
    assert officer.status_code == 200
    denied = client.get(
        "/v1/audit/events", params={"action": "audit.denied"}, headers=bearer(workspace, "victor")
    ).json()["events"]
    assert {e["actor"] for e in denied} == {"sam"}


@pytest.mark.parametrize("who", ["mei", "lin", "erin", "admin"])
def test_only_officers_search_and_export(client: TestClient, workspace: Workspace, who: str):
    for path in ("/v1/audit/events", "/v1/audit/export", "/v1/alerts"):
        assert client.get(path, headers=bearer(workspace, who)).status_code == 403
    assert client.get("/v1/audit/events").status_code == 401


def test_officers_read_no_data(client: TestClient, workspace: Workspace):
    assert read(client, workspace, "victor").status_code == 403


def test_checkpoints_chain_consistently(client: TestClient, workspace: Workspace):
    read(client, workspace)
    first = client.get("/v1/audit/checkpoints/latest", headers=bearer(workspace, "mei")).json()
    for _ in range(3):
        read(client, workspace)
    client.app.state.audit_trail.checkpointer.checkpoint()  # type: ignore[attr-defined]
    second = client.get("/v1/audit/checkpoints/latest", headers=bearer(workspace, "mei")).json()
    assert second["tree_size"] > first["tree_size"]
    proof = client.get(
        "/v1/audit/consistency",
        params={"from": first["tree_size"], "to": second["tree_size"]},
        headers=bearer(workspace, "mei"),
    ).json()
    verify_consistency(
        first["tree_size"],
        second["tree_size"],
        b64(first["root_hash"]),
        b64(second["root_hash"]),
        [b64(n) for n in proof["proof"]],
    )
    note = client.get(
        "/v1/audit/checkpoints/latest", headers={**bearer(workspace, "mei"), "Accept": "text/plain"}
    ).text
    assert note.startswith("kiteline/audit\n")
    bad = client.get(
        "/v1/audit/consistency", params={"from": 5, "to": 10**9}, headers=bearer(workspace, "mei")
    )
    assert bad.status_code == 400


def test_search_filters_and_cursor_pages(client: TestClient, workspace: Workspace):
    for _ in range(5):
        read(client, workspace)
    read(client, workspace, "lin", {"columns": ["name"], "purpose": "imaging model maintenance"})
    officer = bearer(workspace, "victor")
    seen: list[int] = []
    cursor = None
    while True:
        params = {
            "org": "surgibot",
            "dataset": "patients",
            "action": "data.*",
            "limit": 3,
            "since": "1d",
        }
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/audit/events", params=params, headers=officer).json()
        seen += [e["seq"] for e in page["events"]]
        assert all(e["actor_org"] == "surgibot" for e in page["events"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == 10
    denied = client.get(
        "/v1/audit/events", params={"actor": "lin", "decision": "deny"}, headers=officer
    ).json()["events"]
    assert [e["action"] for e in denied] == ["data.denied"]
    assert client.get("/v1/audit/events", params={"text": "name"}, headers=officer).json()["events"]


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": "djE6LTE"},
        {"since": "yesterday-ish"},
        {"since": "2026-01-02", "until": "2026-01-01"},
        {"action": "DROP TABLE"},
        {"limit": "0"},
        {"limit": "100000"},
        {"actor": "x" * 300},
        {"actor": "a\nb"},
    ],
)
def test_bad_filters_and_cursors_are_4xx_problems(
    client: TestClient, workspace: Workspace, params: dict[str, str]
):
    response = client.get("/v1/audit/events", params=params, headers=bearer(workspace, "victor"))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_hash_endpoint_finds_events_by_a_filter_literal(client: TestClient, workspace: Workspace):
    body = {**PATIENT_QUERY, "where": [{"column": "diagnosis", "op": "=", "value": "肺炎"}]}
    read(client, workspace, body=body)
    officer = bearer(workspace, "victor")
    digest = client.post("/v1/audit/hash", json={"value": "肺炎"}, headers=officer).json()["hash"]
    assert digest.startswith("hmac-sha256:")
    found = client.get("/v1/audit/events", params={"text": digest}, headers=officer).json()
    assert [e["action"] for e in found["events"]] == ["data.query"]
    assert "肺炎" not in orjson.dumps(found).decode()


def test_export_is_streamed_with_its_checkpoint(client: TestClient, workspace: Workspace):
    for _ in range(3):
        read(client, workspace)
    officer = bearer(workspace, "victor")
    response = client.get("/v1/audit/export", params={"format": "jsonl"}, headers=officer)
    assert response.status_code == 200
    note = base64.b64decode(response.headers["x-kiteline-checkpoint"]).decode()
    vkey = client.get("/v1/audit/public-key").json()["vkey"]
    checkpoint = Verifier.from_vkey(vkey).verify(note)
    lines = response.content.splitlines()
    # An unfiltered export is the whole log up to the checkpoint: its root recomputes.
    from audit.merkle import root_from_leaf_hashes

    assert len(lines) == checkpoint.tree_size
    assert root_from_leaf_hashes(leaf_hash(line) for line in lines) == checkpoint.root_hash
    as_csv = client.get(
        "/v1/audit/export", params={"format": "csv", "actor": "mei"}, headers=officer
    )
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows and {r["actor"] for r in rows} == {"mei"}
    assert (
        client.get("/v1/audit/export", params={"format": "xml"}, headers=officer).status_code == 400
    )


def test_log_injection_is_stored_inert_and_exported_as_valid_json(
    client: TestClient, workspace: Workspace
):
    evil = '=HYPERLINK()ok\n{"action":"forged"}\x1b[2J\r=cmd|\' /C calc\'!A0' + "x" * 100_000
    client.post(
        "/v1/datasets/patients/query",
        content=b'{"purpose": "' + b"y" * 50_000 + b'"}',
        headers={**bearer(workspace, "mei"), "User-Agent": evil[:4000]},
    )
    client.post(
        f"/v1/datasets/{'z' * 500}/query",
        content=b"{",
        headers={**bearer(workspace, "mei"), "User-Agent": evil[:4000]},
    )
    officer = bearer(workspace, "victor")
    lines = client.get("/v1/audit/export", headers=officer).content.splitlines()
    events = [orjson.loads(line) for line in lines]  # every line is one valid JSON value
    assert not any(e["action"] == "forged" for e in events)
    assert all(len(e.get("user_agent") or "") <= 512 for e in events)
    assert all(len(e.get("dataset") or "") <= 64 for e in events)
    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get("/v1/audit/export", params={"format": "csv"}, headers=officer).text
            )
        )
    )
    assert all(not (r["user_agent"] or "").startswith("=") for r in rows)
