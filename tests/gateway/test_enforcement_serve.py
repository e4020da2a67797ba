"""Every obligation on every data-releasing path, over HTTP against a real ``kiteline serve``.

One server per module: the principals and grants each test needs are seeded into the
state database before it starts, and each test only sends requests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from gateway.access.budgets import set_limits
from gateway.access.grants import add_grant
from gateway.access.principals import add_principal, issue_key
from gateway.demo.workspace import ALUMNI_PURPOSE, SURGICAL_PURPOSE, Workspace
from gateway.state.database import create_state_engine
from tests.conftest import copy_workspace
from tests.serving import free_port, serving

pytestmark = pytest.mark.slow

MEN_ONLY = [{"column": "gender", "op": "=", "value": "男"}]
# A fifth of the patients: every quasi-identifier class holds k rows overall, not in it.
TWO_DIAGNOSES = [{"column": "diagnosis", "op": "in", "value": ["肺结节", "肺炎"]}]
QI_COLUMNS = ["birth_date", "gender", "zip"]
COUNT_BY_GENDER = {"group_by": ["gender"], "aggregates": [{"fn": "count"}], "epsilon": 1.0}


def seed_principal(
    engine: Engine, name: str, kind: str = "employee", org: str | None = None
) -> str:
    add_principal(engine, name=name, kind=kind, org=org)
    return issue_key(engine, name)[1]


def grant(engine: Engine, config: Any, who: str, dataset: str = "patients", **extra: Any) -> int:
    return add_grant(
        engine,
        config,
        subject_type="principal",
        subject=who,
        dataset=dataset,
        profile="anonymized",
        days=30,
        created_by="test",
        approvals=1,
        **extra,
    )


def seed_world(engine: Engine, config: Any, tokens: dict[str, str]) -> None:
    """The principals of the matrix, one per obligation, each with the grant it tests."""
    for name in ("rita", "kai", "eps", "night", "sepp", "sue", "otto"):
        tokens[name] = seed_principal(engine, name)
    grant(engine, config, "rita", row_filter=MEN_ONLY)
    grant(engine, config, "kai", row_filter=TWO_DIAGNOSES)
    set_limits(engine, grant(engine, config, "eps"), epsilon=1.5)
    for mode in ("json", "csv", "arrow", "parquet", "flight"):
        tokens[f"rows_{mode}"] = seed_principal(engine, f"rows_{mode}")
        set_limits(engine, grant(engine, config, f"rows_{mode}"), rows_total=100)
    never = {"days": [], "start": "00:00", "end": "23:59", "timezone": "UTC"}
    grant(engine, config, "night", window=never)
    # Separation: imaging and crm may never be held together.
    grant(engine, config, "sepp")
    grant(engine, config, "sepp", dataset="customers")
    grant(engine, config, "sue")
    grant(engine, config, "otto")


def change_lifecycles(url: str, tokens: dict[str, str]) -> None:
    """Suspend and offboard through the API of the running server, as an admin would."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['admin']}"}) as http:
        assert http.post("/v1/principals/sue/suspend", json={"reason": "t"}).status_code == 200
        assert http.post("/v1/principals/otto/offboard", json={"reason": "t"}).status_code == 200


@pytest.fixture(scope="module")
def world(demo_template: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    workspace = copy_workspace(demo_template, tmp_path_factory.mktemp("enforce") / "ws")
    config = workspace.config
    engine = create_state_engine(config.state_url)
    tokens = dict(workspace.tokens)
    try:
        seed_world(engine, config, tokens)
    finally:
        engine.dispose()
    flight_port = free_port()
    with workspace.config_path.open("a", encoding="utf-8") as handle:
        handle.write(f"flight:\n  enabled: true\n  listen: 127.0.0.1:{flight_port}\n")
    with serving(workspace.config_path) as url:
        change_lifecycles(url, tokens)
        yield {
            "url": url,
            "flight": f"grpc+tcp://127.0.0.1:{flight_port}",
            "tokens": tokens,
            "workspace": workspace,
        }


def http_for(world: dict, name: str) -> httpx.Client:
    return httpx.Client(
        base_url=world["url"],
        headers={"Authorization": f"Bearer {world['tokens'][name]}"},
        timeout=60,
    )


def query(world: dict, name: str, dataset: str, body: dict) -> httpx.Response:
    with http_for(world, name) as http:
        return http.post(f"/v1/datasets/{dataset}/query", json=body)


def test_a_row_read_obeys_the_grant_row_filter(world: dict):
    response = query(world, "rita", "patients", {"columns": ["gender"], "limit": 500})
    assert response.status_code == 200, response.text
    assert {row["gender"] for row in response.json()["rows"]} == {"男"}


def test_an_aggregate_obeys_the_grant_row_filter(world: dict):
    response = query(world, "rita", "patients", COUNT_BY_GENDER)
    assert response.status_code == 200, response.text
    assert {row["gender"] for row in response.json()["rows"]} == {"男"}


def test_an_aggregate_refuses_the_callers_own_filter_rather_than_dropping_it(world: dict):
    body = {
        **COUNT_BY_GENDER,
        "where": [{"column": "diagnosis", "op": "=", "value": "肺炎"}],
        "purpose": ALUMNI_PURPOSE,
    }
    response = query(world, "lin", "patients", body)
    assert response.status_code == 403, response.text
    assert response.json()["rule"] == "no filters under aggregate"


def test_read_events_name_their_module(world: dict):
    assert query(world, "rita", "patients", {"limit": 3}).status_code == 200
    with http_for(world, "victor") as http:
        found = http.get("/v1/audit/events", params={"module": "imaging", "action": "data.read"})
    assert found.status_code == 200, found.text
    events = found.json()["events"]
    assert events and all(e["module"] == "imaging" for e in events)


# -- the bypass matrix: every data-releasing route x every obligation --------------------

# Every route of the app, by (method, path): what it releases. A route missing here fails
# test_every_route_is_in_the_inventory, so a new route cannot go unexamined.
RELEASING = {
    ("POST", "/v1/datasets/{name}/query"): ("json", "csv", "arrow", "parquet", "aggregate"),
    # Not an HTTP route: GetFlightInfo then DoGet on the Arrow Flight endpoint.
    ("FLIGHT", "DoGet"): ("flight",),
}
NOT_RELEASING = {
    ("GET", "/v1/datasets"): "catalog: names and column descriptions, no rows",
    ("GET", "/v1/datasets/{name}"): "catalog: one dataset's description, no rows",
    ("GET", "/v1/datasets/{name}/access"): "who may read, no rows",
    ("POST", "/v1/decisions/explain"): "a decision, no rows",
    ("POST", "/v1/trace"): "officers: names a leak's recipient, no rows",
    ("GET", "/v1/me"): "the caller itself",
    ("GET", "/healthz"): "health",
    ("GET", "/readyz"): "readiness",
    ("GET", "/metrics"): "counters",
    ("POST", "/v1/hooks/hr"): "HR webhook: state change",
}
NOT_RELEASING_PREFIXES = {
    "/v1/audit": "officers read the audit log, which holds no rows (secrets are HMACed)",
    "/v1/alerts": "officers: alerts, no rows",
    "/v1/grants": "grant workflow: state changes",
    "/v1/principals": "principal lifecycle: state changes",
    "/v1/orgs": "org lifecycle: state changes",
    "/docs": "OpenAPI documentation",
    "/redoc": "OpenAPI documentation",
    "/openapi.json": "OpenAPI documentation",
}
ACCEPT = {
    "json": "application/json",
    "csv": "text/csv",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
    "aggregate": "application/json",
    "flight": "application/vnd.apache.arrow.stream",
}
OBLIGATIONS = (
    "row_filter",
    "hidden_column",
    "profile",
    "k",
    "k_within_row_filter",
    "epsilon_budget",
    "row_budget",
    "window",
    "separation",
    "suspension",
    "offboarding",
)
# Obligations that bind one kind of read only, and why the other kind cannot break them.
NOT_APPLICABLE = {
    ("epsilon_budget", "rows"): "row reads spend no epsilon; their budget is rows",
    ("row_budget", "aggregate"): "an aggregate releases no rows; its budget is epsilon",
    ("k_within_row_filter", "aggregate"): (
        "an aggregate releases no rows: its groups are counted over the grant's rows"
        " (row_filter) and thresholded (k)"
    ),
}


def route_inventory(workspace: Workspace) -> set[tuple[str, str]]:
    from fastapi.routing import APIRoute
    from starlette.routing import Route

    from gateway.config import Settings
    from gateway.http.app import create_app

    app = create_app(Settings(config=workspace.config_path))
    found = set()
    for route in app.routes:
        if isinstance(route, APIRoute | Route):
            for method in sorted(route.methods or {"GET"}):
                if method != "HEAD":
                    found.add((method, route.path))
    return found


def test_every_route_is_in_the_inventory(world: dict):
    for method, path in route_inventory(world["workspace"]):
        known = (method, path) in RELEASING or (method, path) in NOT_RELEASING
        known = known or any(path.startswith(p) for p in NOT_RELEASING_PREFIXES)
        assert known, f"{method} {path} is neither a data-releasing route nor listed as not one"


def decoded(mode: str, response: httpx.Response) -> list[dict]:
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if mode in ("json", "aggregate"):
        return response.json()["rows"]
    if mode == "flight":
        return response.table.to_pylist()
    if mode == "csv":
        table = pacsv.read_csv(io.BytesIO(response.content))
    elif mode == "arrow":
        table = pa.ipc.open_stream(response.content).read_all()
    else:
        table = pq.read_table(io.BytesIO(response.content))
    return table.to_pylist()


def ask(world: dict, who: str, mode: str, *, dataset: str = "patients", **body: object):
    if mode == "aggregate":
        body = {"group_by": ["gender"], "aggregates": [{"fn": "count"}], "epsilon": 1.0, **body}
        body.pop("columns", None)
        body.pop("limit", None)
    else:
        body = {"limit": 200, **body}
    if mode == "flight":
        return FlightAnswer.of(world, who, dataset, body)
    with http_for(world, who) as http:
        return http.post(
            f"/v1/datasets/{dataset}/query", json=body, headers={"Accept": ACCEPT[mode]}
        )


# The status an HTTP read answers each kind of problem with, for Flight's answers.
FLIGHT_STATUS = {
    "unauthenticated": 401,
    "access-denied": 403,
    "budget-exhausted": 429,
    "invalid-request": 400,
    "not-found": 404,
}


@dataclass
class FlightAnswer:
    """A Flight read (GetFlightInfo, then DoGet) seen as the checks see an HTTP answer."""

    status_code: int
    headers: dict[str, str]
    table: Any = None
    problem: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        return json.dumps(self.problem)

    def json(self) -> dict[str, Any]:
        assert self.problem is not None
        return self.problem

    @classmethod
    def of(cls, world: dict, who: str, dataset: str, body: dict) -> FlightAnswer:
        import pyarrow.flight as flight

        call = flight.FlightCallOptions(
            headers=[(b"authorization", f"Bearer {world['tokens'][who]}".encode())], timeout=60
        )
        descriptor = flight.FlightDescriptor.for_command(
            json.dumps({"dataset": dataset, "query": body}).encode()
        )
        try:
            with flight.connect(world["flight"]) as client:
                info = client.get_flight_info(descriptor, call)
                table = client.do_get(info.endpoints[0].ticket, call).read_all()
        except flight.FlightError as exc:
            problem = json.loads(exc.extra_info)
            status = FLIGHT_STATUS.get(problem["type"], 500)
            return cls(status, {"content-type": "application/problem+json"}, problem=problem)
        profile = json.loads(info.app_metadata)["profile"]
        return cls(200, {"X-Kiteline-Profile": profile}, table=table)


def refused(response: httpx.Response | FlightAnswer, because: str) -> bool:
    """A problem response (401 or 403) whose detail names ``because``."""
    return (
        response.status_code in (401, 403)
        and response.headers["content-type"].startswith("application/problem+json")
        and because in response.json()["detail"]
    )


def check_row_filter(world: dict, mode: str) -> None:
    response = ask(world, "rita", mode, columns=["gender"])
    assert response.status_code == 200, response.text
    assert {row["gender"] for row in decoded(mode, response)} == {"男"}


def check_hidden_column(world: dict, mode: str) -> None:
    if mode == "aggregate":
        response = ask(world, "mei", mode, group_by=["name"], purpose=SURGICAL_PURPOSE)
    else:
        response = ask(world, "mei", mode, columns=["name"], purpose=SURGICAL_PURPOSE)
    assert response.status_code == 403, response.text


def check_profile(world: dict, mode: str) -> None:
    raw = ask(world, "mei", mode, profile="raw", purpose=SURGICAL_PURPOSE)
    assert raw.status_code == 403, raw.text
    response = ask(world, "mei", mode, columns=["birth_date"], purpose=SURGICAL_PURPOSE)
    assert response.status_code == 200, response.text
    profile = "aggregate" if mode == "aggregate" else "anonymized"
    assert response.headers["X-Kiteline-Profile"] == profile
    if mode != "aggregate":
        # Generalized to a 10-year band: no birth date leaves as it is.
        values = {str(row["birth_date"]) for row in decoded(mode, response)}
        assert values and not any(len(v) == 10 and v[4] == "-" for v in values), values


def check_k(world: dict, mode: str) -> None:
    if mode == "aggregate":
        response = ask(world, "mei", mode, purpose=SURGICAL_PURPOSE)
        assert response.status_code == 200, response.text
        assert response.json()["threshold"] > 0
        return
    response = ask(world, "mei", mode, columns=QI_COLUMNS, limit=10000, purpose=SURGICAL_PURPOSE)
    assert response.status_code == 200, response.text
    classes = class_sizes(decoded(mode, response))
    # The whole dataset (10,000 rows) in one answer: every class has at least k = 5 rows.
    assert classes and min(classes.values()) >= 5


def class_sizes(rows: list[dict]) -> dict[tuple, int]:
    classes: dict[tuple, int] = {}
    for row in rows:
        key = tuple(str(row[c]) for c in QI_COLUMNS)
        classes[key] = classes.get(key, 0) + 1
    return classes


def released_within(world: dict, diagnoses: list[str], diagnosis: str | None = None) -> dict:
    """The class sizes that a grant to the demo's patients of ``diagnoses`` may release
    at k = 5, classes counted among the rows it admits; ``diagnosis`` then selects from
    them as a caller's own filter would."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from gateway.transforms.generalization import generalize

    table = pq.read_table(world["workspace"].root / "data/imaging/patients.parquet")
    table = table.filter(pc.is_in(table["diagnosis"], pa.array(diagnoses)))
    rules = {"birth_date": "band:10", "gender": "keep", "zip": "prefix:1"}
    values = [generalize(table[c].combine_chunks(), rules[c]).to_pylist() for c in QI_COLUMNS]
    rows = [dict(zip(QI_COLUMNS, row, strict=True)) for row in zip(*values, strict=True)]
    inside = class_sizes(rows)
    # The case this checks: a class of k rows in the whole dataset has fewer in the grant.
    assert min(inside.values()) < 5
    chosen = [
        r
        for r, d in zip(rows, table["diagnosis"].to_pylist(), strict=True)
        if diagnosis in (None, d)
    ]
    return {key: n for key, n in class_sizes(chosen).items() if inside[key] >= 5}


def check_k_within_row_filter(world: dict, mode: str) -> None:
    response = ask(world, "kai", mode, columns=QI_COLUMNS, limit=10000)
    assert response.status_code == 200, response.text
    rows = decoded(mode, response)
    classes = class_sizes(rows)
    # The grant's rows (one diagnosis) are the released table: k holds among them, and
    # exactly the rows of its classes of k or more leave.
    assert classes and min(classes.values()) >= 5, sorted(classes.values())[:5]
    assert classes == released_within(world, TWO_DIAGNOSES[0]["value"])


def test_pages_under_a_filtered_grant_release_the_classes_of_its_rows(world: dict):
    """Page by page through the cursor, with a filter of the caller's own: it selects
    rows of the grant's released table, whose classes are counted over the grant's rows."""
    rows: list[dict] = []
    body: dict[str, Any] = {
        "columns": QI_COLUMNS,
        "limit": 40,
        "where": [{"column": "diagnosis", "op": "=", "value": "肺炎"}],
    }
    with http_for(world, "kai") as http:
        while True:
            page = http.post("/v1/datasets/patients/query", json=body)
            assert page.status_code == 200, page.text
            rows += page.json()["rows"]
            if page.json()["next_cursor"] is None:
                break
            body["cursor"] = page.json()["next_cursor"]
    assert class_sizes(rows) == released_within(world, TWO_DIAGNOSES[0]["value"], "肺炎")


def check_epsilon_budget(world: dict, mode: str) -> None:
    assert ask(world, "eps", mode).status_code == 200
    spent = ask(world, "eps", mode)
    assert spent.status_code == 429, spent.text


def check_row_budget(world: dict, mode: str) -> None:
    who = f"rows_{mode}"
    first = ask(world, who, mode, columns=["gender"], limit=80)
    assert first.status_code == 200 and len(decoded(mode, first)) == 80
    second = ask(world, who, mode, columns=["gender"], limit=80)
    # 100 rows in all: the second read gets what is left, the third nothing.
    assert second.status_code == 200 and len(decoded(mode, second)) == 20
    assert ask(world, who, mode, columns=["gender"], limit=80).status_code == 429


def check_window(world: dict, mode: str) -> None:
    assert refused(ask(world, "night", mode), "may be used only")


def check_separation(world: dict, mode: str) -> None:
    assert refused(ask(world, "sepp", mode), "separation of duties")


def check_suspension(world: dict, mode: str) -> None:
    assert refused(ask(world, "sue", mode), "not active")


def check_offboarding(world: dict, mode: str) -> None:
    assert refused(ask(world, "otto", mode), "revoked")


def cells() -> list[tuple[str, str]]:
    modes = [m for ms in RELEASING.values() for m in ms]
    return [
        (obligation, mode)
        for obligation in OBLIGATIONS
        for mode in modes
        if (obligation, "aggregate" if mode == "aggregate" else "rows") not in NOT_APPLICABLE
    ]


@pytest.mark.parametrize(("obligation", "mode"), cells())
def test_every_releasing_route_obeys_every_obligation(world: dict, obligation: str, mode: str):
    globals()[f"check_{obligation}"](world, mode)


def test_the_matrix_covers_every_releasing_route_and_obligation():
    assert all(f"check_{o}" in globals() for o in OBLIGATIONS)
    # Six modes: four row formats, aggregates over HTTP, and rows over Flight.
    assert len(cells()) == len(OBLIGATIONS) * 6 - 5 - 1 - 1
