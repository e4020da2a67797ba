"""The governed read through the HTTP API, in-process, on the demo workspace."""

from __future__ import annotations

import io
import sqlite3
import time

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from gateway.demo.workspace import ALUMNI_PURPOSE, MARKET_PURPOSE, SURGICAL_PURPOSE, Workspace
from tests.conftest import bearer

PATIENT_QUERY = {
    "columns": ["patient_id", "birth_date", "diagnosis"],
    "limit": 5,
    "purpose": SURGICAL_PURPOSE,
}


def query(
    client: TestClient, ws: Workspace, who: str, dataset: str, body: object, **headers: str
) -> object:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(
        f"/v1/datasets/{dataset}/query", content=content, headers={**bearer(ws, who), **headers}
    )


def audit_rows(ws: Workspace) -> list[dict[str, object]]:
    with sqlite3.connect(ws.root / "state.db") as conn:
        bodies = [r[0] for r in conn.execute("SELECT body FROM audit_events ORDER BY seq")]
    return [orjson.loads(b) for b in bodies]


def source_patients(ws: Workspace) -> pa.Table:
    return pq.read_table(ws.root / "data/imaging/patients.parquet")


def test_partner_reads_pseudonymized_generalized_rows(client: TestClient, workspace: Workspace):
    response = query(client, workspace, "mei", "patients", PATIENT_QUERY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["profile"] == "anonymized"
    assert [c["name"] for c in body["columns"]] == ["patient_id", "birth_date", "diagnosis"]
    assert len(body["rows"]) == 5
    source = source_patients(workspace).slice(0, 5).to_pylist()
    for row, raw in zip(body["rows"], source, strict=True):
        assert row["patient_id"].startswith("p1_")
        assert row["patient_id"] != raw["patient_id"]
        decade = raw["birth_date"].year // 10 * 10
        assert row["birth_date"] == f"{decade}-{decade + 9}"
        assert row["diagnosis"] == raw["diagnosis"]
    assert body["next_cursor"]
    assert response.headers["x-kiteline-audit-seq"].isdigit()
    assert response.headers["x-request-id"]


def test_direct_identifier_is_refused_not_dropped(client: TestClient, workspace: Workspace):
    response = query(
        client, workspace, "mei", "patients", {**PATIENT_QUERY, "columns": ["patient_id", "name"]}
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["column"] == "name"
    assert "direct_identifier" in problem["detail"] and "anonymized" in problem["detail"]


def test_omitting_columns_returns_every_visible_column(client: TestClient, workspace: Workspace):
    response = query(
        client, workspace, "mei", "patients", {"limit": 3, "purpose": SURGICAL_PURPOSE}
    )
    assert response.status_code == 200
    names = [c["name"] for c in response.json()["columns"]]
    assert names == ["patient_id", "birth_date", "gender", "zip", "diagnosis", "notes"]
    assert all(r["zip"].endswith("***") for r in response.json()["rows"])


@pytest.mark.parametrize(
    ("who", "dataset", "body", "status", "reason"),
    [
        ("mei", "patients", {"limit": 1}, 403, "purpose 'surgical robot training' is required"),
        ("mei", "patients", {"limit": 1, "purpose": "ads"}, 403, "the request stated 'ads'"),
        ("mei", "customers", {"limit": 1, "purpose": SURGICAL_PURPOSE}, 403, "no active grant"),
        ("victor", "patients", {"limit": 1}, 403, "officers govern access"),
        ("admin", "patients", {"limit": 1}, 403, "admins govern access"),
        ("erin", "patients", {"limit": 1}, 403, "no active grant"),
        (
            "lin",
            "patients",
            {"limit": 1, "purpose": ALUMNI_PURPOSE, "profile": "raw"},
            403,
            "alumni never receive the raw profile",
        ),
        (
            "sam",
            "customers",
            {"limit": 1, "purpose": MARKET_PURPOSE},
            403,
            "aggregate profile returns no rows",
        ),
        ("erin", "studies", {"limit": 1}, 200, None),
        ("lin", "studies", {"limit": 1, "purpose": ALUMNI_PURPOSE}, 200, None),
        ("lin", "patients", {"limit": 1, "purpose": ALUMNI_PURPOSE}, 200, None),
        ("mei", "studies", {"limit": 1, "purpose": SURGICAL_PURPOSE}, 200, None),
    ],
)
def test_decision_table(
    client: TestClient,
    workspace: Workspace,
    who: str,
    dataset: str,
    body: dict[str, object],
    status: int,
    reason: str | None,
):
    response = query(client, workspace, who, dataset, body)
    assert response.status_code == status, response.text
    if reason is not None:
        assert reason in " ".join(response.json()["reasons"])


def test_profiles_by_principal(client: TestClient, workspace: Workspace):
    erin = query(client, workspace, "erin", "studies", {"limit": 2}).json()
    lin = query(client, workspace, "lin", "studies", {"limit": 2, "purpose": ALUMNI_PURPOSE}).json()
    assert erin["profile"] == "pseudonymized"
    assert lin["profile"] == "anonymized"
    # Under pseudonymized the month is not generalized; under anonymized it is.
    assert "T" in erin["rows"][0]["acquired_at"]
    assert len(lin["rows"][0]["acquired_at"]) == 7
    assert "image_uri" not in erin["rows"][0]


def test_pseudonyms_join_within_recipient_and_differ_across(
    client: TestClient, workspace: Workspace
):
    def pseudonyms(who: str, dataset: str, limit: int, purpose: str) -> set[str]:
        body = {"columns": ["patient_id"], "limit": limit, "purpose": purpose}
        rows = query(client, workspace, who, dataset, body).json()["rows"]
        return {r["patient_id"] for r in rows}

    known = pseudonyms("mei", "patients", 10_000, SURGICAL_PURPOSE)
    # same domain: the tables join
    assert pseudonyms("mei", "studies", 200, SURGICAL_PURPOSE) <= known
    # other recipient: nothing links
    assert not known & pseudonyms("lin", "patients", 10_000, ALUMNI_PURPOSE)


def test_filters_on_transformed_columns_are_refused(client: TestClient, workspace: Workspace):
    raw_id = source_patients(workspace).column("patient_id")[0].as_py()
    probe = {**PATIENT_QUERY, "where": [{"column": "patient_id", "op": "=", "value": raw_id}]}
    response = query(client, workspace, "mei", "patients", probe)
    assert response.status_code == 403
    assert "filters apply only to columns returned unchanged" in response.json()["detail"]
    order = {**PATIENT_QUERY, "order_by": ["-birth_date"]}
    assert query(client, workspace, "mei", "patients", order).status_code == 403
    hidden = {**PATIENT_QUERY, "where": [{"column": "name", "op": "like", "value": "张%"}]}
    assert query(client, workspace, "mei", "patients", hidden).status_code == 403


def test_filters_and_order_on_visible_columns(client: TestClient, workspace: Workspace):
    body = {
        "columns": ["diagnosis", "gender"],
        "limit": 50,
        "purpose": SURGICAL_PURPOSE,
        "where": [{"column": "diagnosis", "op": "in", "value": ["骨折", "肺炎"]}],
        "order_by": [{"column": "diagnosis", "desc": True}],
    }
    rows = query(client, workspace, "mei", "patients", body).json()["rows"]
    assert rows and {r["diagnosis"] for r in rows} <= {"骨折", "肺炎"}
    assert [r["diagnosis"] for r in rows] == sorted((r["diagnosis"] for r in rows), reverse=True)


def test_cursor_pages_are_contiguous(client: TestClient, workspace: Workspace):
    body = {"columns": ["patient_id"], "limit": 7, "purpose": SURGICAL_PURPOSE}
    first = query(client, workspace, "mei", "patients", body).json()
    second = query(
        client, workspace, "mei", "patients", {**body, "cursor": first["next_cursor"]}
    ).json()
    both = query(client, workspace, "mei", "patients", {**body, "limit": 14}).json()
    assert first["rows"] + second["rows"] == both["rows"]
    other = {**body, "columns": ["diagnosis"], "cursor": first["next_cursor"]}
    assert query(client, workspace, "mei", "patients", other).status_code == 400


def test_last_page_has_no_cursor(client: TestClient, workspace: Workspace):
    body = {"columns": ["diagnosis"], "limit": 10_000, "purpose": SURGICAL_PURPOSE}
    page = query(client, workspace, "mei", "patients", body).json()
    assert len(page["rows"]) == 10_000
    assert page["next_cursor"] is None


@pytest.mark.parametrize(
    "accept", ["text/csv", "application/vnd.apache.arrow.stream", "application/vnd.apache.parquet"]
)
def test_formats_carry_the_same_rows(client: TestClient, workspace: Workspace, accept: str):
    expected = query(client, workspace, "mei", "patients", PATIENT_QUERY).json()["rows"]
    response = query(client, workspace, "mei", "patients", PATIENT_QUERY, Accept=accept)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(accept)
    data = io.BytesIO(response.content)
    if accept == "text/csv":
        table = pacsv.read_csv(
            data,
            convert_options=pacsv.ConvertOptions(
                column_types={"patient_id": pa.string(), "birth_date": pa.string()}
            ),
        )
    elif accept.endswith("arrow.stream"):
        table = pa.ipc.open_stream(data).read_all()
    else:
        table = pq.read_table(data)
    assert table.to_pylist() == expected


@pytest.mark.parametrize(
    ("dataset", "body", "headers", "status"),
    [
        ("patients", b"{not json", {}, 400),
        ("patients", b"[1, 2]", {}, 400),
        ("nope", {"limit": 1}, {}, 404),
        ("patients", {"columns": ["no_such"], "purpose": SURGICAL_PURPOSE}, {}, 400),
        (
            "patients",
            {
                "purpose": SURGICAL_PURPOSE,
                "where": [{"column": "diagnosis", "op": "=", "value": 3}],
            },
            {},
            400,
        ),
        (
            "patients",
            {
                "purpose": SURGICAL_PURPOSE,
                "where": [{"column": "diagnosis", "op": "~", "value": "x"}],
            },
            {},
            400,
        ),
        (
            "patients",
            {
                "purpose": SURGICAL_PURPOSE,
                "where": [{"column": "diagnosis", "op": "between", "value": "x"}],
            },
            {},
            400,
        ),
        ("patients", {"purpose": SURGICAL_PURPOSE, "limit": -1}, {}, 400),
        ("patients", {"purpose": SURGICAL_PURPOSE, "limit": 10_001}, {}, 400),
        ("patients", {"purpose": SURGICAL_PURPOSE, "cursor": "bm90LWEtY3Vyc29y"}, {}, 400),
        ("patients", {"purpose": SURGICAL_PURPOSE, "surprise": 1}, {}, 400),
        ("patients", PATIENT_QUERY, {"Accept": "application/xml"}, 406),
    ],
)
def test_bad_input_gets_a_problem_and_is_audited(
    client: TestClient,
    workspace: Workspace,
    dataset: str,
    body: object,
    headers: dict[str, str],
    status: int,
):
    before = len(audit_rows(workspace))
    response = query(client, workspace, "mei", dataset, body, **headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert {"type", "title", "status", "detail", "request_id"} <= problem.keys()
    assert problem["status"] == status
    events = audit_rows(workspace)[before:]
    assert [e["action"] for e in events] == ["request.rejected"]
    assert events[0]["request_id"] == problem["request_id"]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic dXNlcjpwYXNz",
        "Bearer ",
        "Bearer not-a-token",
        "Bearer kl_aaaaaaaaaaaa_" + "A" * 43,
    ],
)
def test_bad_credentials_get_401_and_are_audited(
    client: TestClient, workspace: Workspace, authorization: str | None
):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.post("/v1/datasets/patients/query", content=b"{}", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    last = audit_rows(workspace)[-1]
    assert last["action"] == "auth.failed"
    assert last["decision"] == "deny"
    if authorization:
        assert (
            authorization.split(" ", 1)[-1] not in orjson.dumps(last).decode()
            or authorization == "Bearer "
        )


def test_every_route_needs_a_token(client: TestClient):
    for method, path in [
        ("GET", "/v1/me"),
        ("GET", "/v1/datasets"),
        ("GET", "/v1/datasets/patients"),
        ("POST", "/v1/datasets/patients/query"),
    ]:
        assert client.request(method, path).status_code == 401, path


def test_me_and_catalog(client: TestClient, workspace: Workspace):
    me = client.get("/v1/me", headers=bearer(workspace, "mei")).json()
    assert me["kind"] == "partner" and me["org"] == "surgibot"
    assert {g["dataset"] for g in me["grants"]} == {"patients", "studies"}
    listed = client.get("/v1/datasets", headers=bearer(workspace, "mei")).json()["datasets"]
    assert [d["name"] for d in listed] == ["patients", "studies"]
    patients = listed[0]
    assert patients["purpose"] == SURGICAL_PURPOSE
    assert [c["name"] for c in patients["columns"]] == [
        "patient_id",
        "birth_date",
        "gender",
        "zip",
        "diagnosis",
        "notes",
    ]
    assert client.get("/v1/datasets/customers", headers=bearer(workspace, "mei")).status_code == 403
    assert client.get("/v1/datasets/nope", headers=bearer(workspace, "mei")).status_code == 404
    sam = client.get("/v1/datasets/customers", headers=bearer(workspace, "sam")).json()
    assert sam["profile"] == "aggregate"
    assert "contact_name" not in [c["name"] for c in sam["columns"]]


def test_every_outcome_is_audited_and_filter_literals_are_hashed(
    client: TestClient, workspace: Workspace
):
    secret = "13812345678"
    body = {
        **PATIENT_QUERY,
        "columns": ["diagnosis"],
        "where": [{"column": "diagnosis", "op": "=", "value": secret}],
    }
    assert query(client, workspace, "mei", "patients", body).status_code == 200
    assert query(client, workspace, "victor", "patients", {"limit": 1}).status_code == 403
    events = audit_rows(workspace)
    actions = [e["action"] for e in events[-3:]]
    assert actions == ["data.query", "data.read", "data.denied"]
    dump = orjson.dumps(events).decode()
    assert secret not in dump
    assert events[-3]["where"][0]["value"].startswith("hmac-sha256:")
    read = events[-2]
    assert read["rows"] == 0 and read["digest"].startswith("sha256:")
    assert read["query_seq"] == events[-3]["seq"]
    assert events[-1]["actor"] == "victor" and events[-1]["decision"] == "deny"


def test_revocation_applies_to_the_next_request(client: TestClient, workspace: Workspace):
    from gateway.access.grants import revoke_grant
    from gateway.access.principals import set_status
    from gateway.state.database import create_state_engine

    assert query(client, workspace, "erin", "studies", {"limit": 1}).status_code == 200
    engine = create_state_engine(workspace.config.state_url)
    me = client.get("/v1/me", headers=bearer(workspace, "erin")).json()
    revoke_grant(engine, me["grants"][0]["id"])
    assert query(client, workspace, "erin", "studies", {"limit": 1}).status_code == 403
    set_status(engine, "erin", "suspended")
    assert query(client, workspace, "erin", "studies", {"limit": 1}).status_code == 401
    engine.dispose()


def test_audit_failure_means_503_and_no_data(client: TestClient, workspace: Workspace):
    with sqlite3.connect(workspace.root / "state.db") as conn:
        conn.execute("ALTER TABLE audit_events RENAME TO audit_events_moved")
    response = query(client, workspace, "mei", "patients", PATIENT_QUERY)
    assert response.status_code == 503
    assert "rows" not in response.text
    assert response.json()["title"] == "Service unavailable"


def test_a_read_whose_audit_fails_never_gives_back_more_than_it_reserved(
    client: TestClient, workspace: Workspace
):
    # A page of fewer rows than its limit gives the rest of its reservation back, once:
    # also when the audit append after it fails.
    counts = source_patients(workspace).group_by("diagnosis").aggregate([([], "count_all")])
    rare = min(counts.to_pylist(), key=lambda r: r["count_all"])
    assert rare["count_all"] < 1000
    body = {
        "purpose": SURGICAL_PURPOSE,
        "columns": ["patient_id", "diagnosis"],
        "where": [{"column": "diagnosis", "op": "=", "value": rare["diagnosis"]}],
        "limit": 1000,
    }
    today = "X-Kiteline-Rows-Remaining-Today"
    first = query(client, workspace, "mei", "patients", body)
    assert first.status_code == 200, first.text
    with sqlite3.connect(workspace.root / "state.db") as conn:
        conn.execute("ALTER TABLE audit_events RENAME TO audit_events_moved")
    assert query(client, workspace, "mei", "patients", body).status_code == 503
    with sqlite3.connect(workspace.root / "state.db") as conn:
        conn.execute("ALTER TABLE audit_events_moved RENAME TO audit_events")
    last = query(client, workspace, "mei", "patients", {**body, "limit": 1})
    assert last.status_code == 200, last.text
    # The header counts the request's own reservation as spent. Each 1000-row read gave
    # back the rows it did not fill, once; the failed one was charged what it built.
    unfilled = 1000 - len(first.json()["rows"])
    assert unfilled > 0
    assert int(last.headers[today]) == int(first.headers[today]) + unfilled - 1000 + unfilled - 1


def test_operations_endpoints(client: TestClient, workspace: Workspace):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    # Metrics describe who uses what: officers and service principals only.
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer(workspace, "mei")).status_code == 403
    assert (
        "kiteline_http_requests" in client.get("/metrics", headers=bearer(workspace, "victor")).text
    )
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    # The governed read solves no parameters itself, but documents them all the same.
    read = spec["paths"]["/v1/datasets/{name}/query"]["post"]
    assert [(p["name"], p["in"], p["required"]) for p in read["parameters"]] == [
        ("name", "path", True),
        ("Accept", "header", False),
    ]
    body = read["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/QueryRequest"}
    assert "limit" in spec["components"]["schemas"]["QueryRequest"]["properties"]
    # Every operation's tag is documented, in the order the documentation shows them.
    documented = [tag["name"] for tag in spec["tags"]]
    used = {t for path in spec["paths"].values() for op in path.values() for t in op["tags"]}
    assert used == set(documented)
    assert documented[:3] == ["operations", "me", "datasets"]


def test_a_wrong_method_on_the_governed_read_route_is_refused_as_such(
    client: TestClient, workspace: Workspace
):
    # The read's route is matched first: other methods on its path still get 405.
    response = client.get("/v1/datasets/patients/query", headers=bearer(workspace, "mei"))
    assert response.status_code == 405
    assert client.get("/v1/datasets", headers=bearer(workspace, "mei")).status_code == 200


def test_unknown_route_is_a_problem(client: TestClient):
    response = client.get("/v2/nothing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_huge_numbers_are_rejected_cleanly(client: TestClient, workspace: Workspace):
    body = (
        b'{"purpose": "surgical robot training", "where": [{"column": "diagnosis", '
        b'"op": "=", "value": 123456789012345678901234567890}]}'
    )
    response = query(client, workspace, "mei", "patients", body)
    assert response.status_code == 400
    assert audit_rows(workspace)[-1]["where"][0]["value"].startswith("hmac-sha256:")


def test_request_ids_are_unique_and_grow_with_time(client: TestClient):
    # Time first, so that the audit log's request-id index grows at its end.
    ids = [client.get("/healthz").headers["x-request-id"] for _ in range(50)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    clock = [i[:12] for i in ids]
    assert clock == sorted(clock)
    assert abs(int(ids[-1][:12], 16) - time.time_ns() // 1_000_000) < 60_000
    # A caller's own id is kept when it is safe to log.
    proposed = client.get("/healthz", headers={"X-Request-ID": "partner-trace-0001"})
    assert proposed.headers["x-request-id"] == "partner-trace-0001"
