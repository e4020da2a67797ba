"""The governed read, the same on every store kind: local files, S3, PostgreSQL, Spark.

One demo workspace (one master key, one state database, the same principals and keys)
is copied once per kind; the copies differ only in where the datasets live: the local
folder, a bucket on a real S3-protocol server (moto, over HTTP on loopback), tables
in the real PostgreSQL and Parquet files read by a real Spark Connect server. The
same query by the same principal must give the same bytes back from each, and every
failure of a hosted store must become a clear problem that the audit log records.
"""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uvicorn
from click.testing import CliRunner
from fastapi.testclient import TestClient
from psycopg import sql

from connectors import Cancellation
from gateway.auditing.log import RequestMeta
from gateway.cli.main import cli
from gateway.config import Settings
from gateway.demo.hosted_stores import (
    load_postgres,
    postgres_store,
    s3_server,
    s3_store,
    upload_seed,
)
from gateway.demo.spark import SPARK_TOKEN_FILE, spark_store
from gateway.demo.workspace import (
    ALUMNI_PURPOSE,
    LOCAL_STORE,
    SURGICAL_PURPOSE,
    DemoStore,
    Workspace,
    config_text,
)
from gateway.http.app import create_app
from gateway.read import rows
from gateway.read.rows import BUFFERED_READ_ROWS
from tests.conftest import bearer, client_for, copy_workspace, pg_url

pytestmark = [pytest.mark.slow]

KINDS = ("local", "s3", "postgres", "spark")


@dataclass
class StoreSite:
    kind: str
    workspace: Workspace
    client: TestClient
    schema: str | None = None  # PostgreSQL only


def _rewrite(workspace: Workspace, store: DemoStore, **extra: str) -> None:
    text = config_text(8787, store)
    for old, new in extra.items():
        text = text.replace(old, new)
    workspace.config_path.write_text(text, encoding="utf-8")


def _as_store(template: Workspace, target: Path, store: DemoStore) -> Workspace:
    workspace = copy_workspace(template, target)
    if store.data_dir != "data":
        shutil.copytree(workspace.root / "data", workspace.root / store.data_dir)
        shutil.rmtree(workspace.root / "data")
    _rewrite(workspace, store)
    return workspace


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("moto")
    with s3_server(tmp_path_factory.mktemp("moto") / "server.log") as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def demo_schema(postgres_url: str, demo_template: Workspace) -> Iterator[str]:
    schema = f"kl_demo_{uuid.uuid4().hex[:10]}"
    load_postgres(postgres_url, schema, demo_template.root / "data")
    try:
        yield schema
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def _site(
    kind: str,
    template: Workspace,
    root: Path,
    request: pytest.FixtureRequest,
) -> StoreSite:
    schema = None
    if kind == "local":
        workspace = copy_workspace(template, root)
        _rewrite(workspace, LOCAL_STORE)
    elif kind == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        workspace = _as_store(template, root, s3_store(endpoint))
        upload_seed(workspace.root, endpoint)
    elif kind == "spark":
        server = request.getfixturevalue("spark_server")
        workspace = copy_workspace(template, root)
        _rewrite(workspace, spark_store(workspace.root / "data", server.url))
        (workspace.root / SPARK_TOKEN_FILE).write_text(server.token + "\n")
        (workspace.root / SPARK_TOKEN_FILE).chmod(0o600)
    else:
        postgres_url = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("demo_schema")
        workspace = _as_store(template, root, postgres_store(schema))
        (workspace.root / "keys/postgres.url").write_text(postgres_url + "\n")
        (workspace.root / "keys/postgres.url").chmod(0o600)
    client = client_for(workspace)
    return StoreSite(kind, workspace, client, schema)


@pytest.fixture(scope="session")
def sites(
    demo_template: Workspace,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[dict[str, StoreSite]]:
    """Built lazily, one per kind, and kept for the session."""
    built: dict[str, StoreSite] = {}

    class Lazy(dict[str, StoreSite]):
        def __missing__(self, kind: str) -> StoreSite:
            site = _site(kind, demo_template, tmp_path_factory.mktemp(kind) / "ws", request)
            site.client.__enter__()
            built[kind] = site
            self[kind] = site
            return site

    yield Lazy()
    for site in built.values():
        site.client.__exit__(None, None, None)


@pytest.fixture(params=KINDS)
def site(request: pytest.FixtureRequest, sites: dict[str, StoreSite]) -> StoreSite:
    return sites[request.param]


@pytest.fixture
def local(sites: dict[str, StoreSite]) -> StoreSite:
    return sites["local"]


def post(site: StoreSite, who: str, dataset: str, body: dict[str, Any], accept: str = ""):
    headers = {**bearer(site.workspace, who)}
    if accept:
        headers["Accept"] = accept
    return site.client.post(
        f"/v1/datasets/{dataset}/query", content=orjson.dumps(body), headers=headers
    )


def answer(response: Any) -> tuple[int, Any]:
    """What a caller sees, minus what differs per request (ids, audit sequence numbers)."""
    if response.headers["content-type"].startswith("application/problem+json"):
        problem = response.json()
        problem.pop("request_id", None)
        return response.status_code, problem
    media = response.headers["content-type"]
    if media.startswith("application/json"):
        return response.status_code, response.json()
    if media.startswith("text/csv"):
        return response.status_code, response.text
    if media.startswith("application/vnd.apache.arrow.stream"):
        table = pa.ipc.open_stream(response.content).read_all()
        return response.status_code, (str(table.schema), table.to_pylist())
    table = pq.read_table(io.BytesIO(response.content))
    return response.status_code, (str(table.schema), table.to_pylist())


# The same queries, by the same principals, against every store kind.
CASES: list[tuple[str, str, str, dict[str, Any], str]] = [
    (
        "partner-anonymized",
        "mei",
        "patients",
        {
            "columns": ["patient_id", "birth_date", "diagnosis"],
            "limit": 5,
            "purpose": SURGICAL_PURPOSE,
        },
        "",
    ),
    (
        "filters",
        "mei",
        "patients",
        {
            "columns": ["patient_id", "zip", "gender", "diagnosis", "notes"],
            "where": [
                {"column": "diagnosis", "op": "in", "value": ["骨折", "肺炎"]},
                {"column": "diagnosis", "op": "!=", "value": "肺炎"},
                {"column": "diagnosis", "op": "like", "value": "%骨%"},
                {"column": "diagnosis", "op": ">=", "value": "骨"},
                {"column": "diagnosis", "op": "is_null", "value": False},
            ],
            "limit": 40,
            "purpose": SURGICAL_PURPOSE,
        },
        "",
    ),
    (
        "ordered-window",
        "erin",
        "studies",
        {
            "columns": ["study_id", "modality", "acquired_at", "finding"],
            "where": [
                {"column": "modality", "op": "=", "value": "MR"},
                {
                    "column": "acquired_at",
                    "op": "between",
                    "value": ["2022-01-01T00:00:00", "2022-06-30T23:59:59"],
                },
            ],
            "order_by": [{"column": "acquired_at", "desc": True}],
            "limit": 25,
        },
        "",
    ),
    (
        "csv",
        "lin",
        "studies",
        {
            "columns": ["study_id", "body_part", "acquired_at"],
            "limit": 30,
            "purpose": ALUMNI_PURPOSE,
        },
        "text/csv",
    ),
    (
        "arrow",
        "erin",
        "studies",
        {
            "limit": 300,
            # Keys enough to leave no ties: stores may order tied rows differently.
            "order_by": [
                {"column": "acquired_at"},
                {"column": "modality"},
                {"column": "body_part"},
                {"column": "finding"},
            ],
        },
        "application/vnd.apache.arrow.stream",
    ),
    (
        "parquet",
        "mei",
        "studies",
        {
            "columns": ["patient_id", "modality", "acquired_at"],
            "limit": 200,
            "purpose": SURGICAL_PURPOSE,
        },
        "application/vnd.apache.parquet",
    ),
    (
        "refused-column",
        "mei",
        "patients",
        {"columns": ["patient_id", "name"], "limit": 5, "purpose": SURGICAL_PURPOSE},
        "",
    ),
    (
        "refused-filter",
        "mei",
        "patients",
        {
            "columns": ["patient_id"],
            "where": [{"column": "birth_date", "op": ">", "value": "1970-01-01"}],
            "purpose": SURGICAL_PURPOSE,
        },
        "",
    ),
    (
        "no-grant",
        "sam",
        "patients",
        {"columns": ["patient_id"], "purpose": SURGICAL_PURPOSE},
        "",
    ),
    (
        "empty",
        "mei",
        "patients",
        {
            "columns": ["diagnosis"],
            "where": [{"column": "diagnosis", "op": "=", "value": "no such"}],
            "purpose": SURGICAL_PURPOSE,
        },
        "",
    ),
]


@pytest.mark.parametrize(
    ("case", "who", "dataset", "body", "accept"), CASES, ids=[c[0] for c in CASES]
)
def test_same_query_same_answer(
    site: StoreSite,
    local: StoreSite,
    case: str,
    who: str,
    dataset: str,
    body: dict[str, Any],
    accept: str,
) -> None:
    expected = answer(post(local, who, dataset, body, accept))
    got = answer(post(site, who, dataset, body, accept))
    assert got == expected
    if case.startswith("refused") or case == "no-grant":
        assert got[0] == 403
    else:
        assert got[0] == 200, got[1]
        if case != "empty":
            assert got[1], "the comparison must cover rows"


def test_cursor_pages_are_the_same(site: StoreSite, local: StoreSite) -> None:
    def pages(target: StoreSite) -> list[Any]:
        body: dict[str, Any] = {"columns": ["study_id", "modality", "finding"], "limit": 7}
        seen = []
        for _ in range(3):
            response = post(target, "erin", "studies", body)
            assert response.status_code == 200, response.text
            page = response.json()
            seen.append(page["rows"])
            body = {**body, "cursor": page["next_cursor"]}
        return seen

    expected = pages(local)
    assert pages(site) == expected
    assert len({row["study_id"] for page in expected for row in page}) == 21


def test_describe_is_the_same(site: StoreSite, local: StoreSite) -> None:
    path = "/v1/datasets/studies"
    params = {"purpose": SURGICAL_PURPOSE}
    expected = local.client.get(path, params=params, headers=bearer(local.workspace, "mei"))
    got = site.client.get(path, params=params, headers=bearer(site.workspace, "mei"))
    assert got.status_code == expected.status_code == 200
    assert got.json() == expected.json()
    listed = site.client.get("/v1/datasets", headers=bearer(site.workspace, "erin"))
    assert [d["name"] for d in listed.json()["datasets"]] == ["studies"]


def test_only_reads_of_local_files_are_tried_on_the_event_loop(site: StoreSite) -> None:
    # A remote store's page is a network wait: it runs in a worker thread from the start.
    gateway = site.client.app.state.gateway  # type: ignore[attr-defined]
    assert gateway.reads_locally("patients") is (site.kind == "local")
    assert gateway.reads_locally("no_such_dataset")  # refused at once, reads nothing


def test_check_passes_against_the_store(site: StoreSite) -> None:
    result = CliRunner().invoke(cli, ["--config", str(site.workspace.config_path), "check"])
    assert result.exit_code == 0, result.output
    assert "ok (4 datasets" in result.output


# --- failures --------------------------------------------------------------------------


def audit_events(workspace: Workspace) -> list[dict[str, Any]]:
    """The log's events about requests, in order: without the records of the checkpoints
    the gateway signs (one may follow the last request, when the gateway stops)."""
    with sqlite3.connect(workspace.root / "state.db") as connection:
        rows = connection.execute("SELECT body FROM audit_events ORDER BY seq").fetchall()
    events = [json.loads(row[0]) for row in rows]
    return [event for event in events if event["action"] != "checkpoint.signed"]


def rows_spent(workspace: Workspace) -> float:
    """The rows charged to every grant's row budgets, all periods together."""
    with sqlite3.connect(workspace.root / "state.db") as connection:
        row = connection.execute(
            "SELECT coalesce(sum(used), 0) FROM budget_usage WHERE account LIKE '%:rows'"
        ).fetchone()
    return float(row[0])


def broken_copy(site: StoreSite, tmp_path: Path, old: str, new: str) -> Workspace:
    """A copy of a site's workspace with one line of its configuration changed."""
    workspace = copy_workspace(site.workspace, tmp_path / "broken")
    text = workspace.config_path.read_text(encoding="utf-8")
    assert old in text
    workspace.config_path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return workspace


PATIENT_QUERY = {"columns": ["patient_id", "diagnosis"], "limit": 5, "purpose": SURGICAL_PURPOSE}


def _missing_location(site: StoreSite) -> tuple[str, str]:
    if site.kind == "postgres":
        return f"location: {site.schema}.patients", f"location: {site.schema}.gone"
    return "location: imaging/patients.parquet", "location: imaging/gone.parquet"


def test_missing_object_is_404_and_audited(
    site: StoreSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    workspace = broken_copy(site, tmp_path, *_missing_location(site))
    with client_for(workspace) as client:
        response = client.post(
            "/v1/datasets/patients/query", json=PATIENT_QUERY, headers=bearer(workspace, "mei")
        )
        assert response.status_code == 404
        assert response.json()["detail"] == (
            "the data behind this dataset is missing from its store"
        )
        described = client.get(
            "/v1/datasets/patients",
            params={"purpose": SURGICAL_PURPOSE},
            headers=bearer(workspace, "mei"),
        )
        assert described.status_code == 404
    events = audit_events(workspace)
    failed = [e for e in events if e["action"] == "request.rejected"]
    assert [e["attempted"] for e in failed[-2:]] == ["data.query", "catalog.describe"]
    assert all(e["status"] == 404 and e["dataset"] == "patients" for e in failed[-2:])
    assert "DatasetNotFound" in caplog.text
    result = CliRunner().invoke(cli, ["--config", str(workspace.config_path), "check"])
    assert result.exit_code == 2
    assert "datasets.patients.location: no data at" in result.output


def _unreachable(site: StoreSite, tmp_path: Path, port: int) -> Workspace:
    if site.kind == "s3":
        endpoint = site.workspace.config.stores["demo"].endpoint_url  # type: ignore[union-attr]
        return broken_copy(
            site, tmp_path, f"endpoint_url: {endpoint}", f"endpoint_url: http://127.0.0.1:{port}"
        )
    if site.kind == "spark":
        url = site.workspace.config.stores["demo"].url  # type: ignore[union-attr]
        return broken_copy(site, tmp_path, f"url: {url}", f"url: sc://127.0.0.1:{port}")
    workspace = copy_workspace(site.workspace, tmp_path / "broken")
    (workspace.root / "keys/postgres.url").write_text(
        f"postgresql://postgres:not-the-password@127.0.0.1:{port}/test\n"
    )
    return workspace


@pytest.mark.parametrize("kind", ["s3", "postgres", "spark"])
def test_unreachable_store_is_503_and_audited(
    kind: str,
    sites: dict[str, StoreSite],
    tmp_path: Path,
    unused_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    workspace = _unreachable(sites[kind], tmp_path, unused_port)
    with client_for(workspace) as client:
        response = client.post(
            "/v1/datasets/patients/query", json=PATIENT_QUERY, headers=bearer(workspace, "mei")
        )
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "store" in response.json()["detail"]
    failed = audit_events(workspace)[-1]
    assert failed["action"] == "request.failed" and failed["status"] == 503
    assert "StoreUnavailable" in caplog.text
    assert "not-the-password" not in caplog.text
    assert "not-the-password" not in json.dumps(audit_events(workspace))


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.pg
def test_refused_credentials_are_503(
    sites: dict[str, StoreSite], tmp_path: Path, postgres_url: str
) -> None:
    site = sites["postgres"]
    workspace = copy_workspace(site.workspace, tmp_path / "refused")
    user = f"kl_nobody_{uuid.uuid4().hex[:6]}"
    refused = psycopg.conninfo.make_conninfo(postgres_url, user=user, password="wrong-secret")
    (workspace.root / "keys/postgres.url").write_text(refused + "\n")
    with client_for(workspace) as client:
        response = client.get(
            "/v1/datasets/patients",
            params={"purpose": SURGICAL_PURPOSE},
            headers=bearer(workspace, "mei"),
        )
    assert response.status_code == 503
    event = audit_events(workspace)[-1]
    assert event["action"] == "request.failed" and event["attempted"] == "catalog.describe"
    assert "wrong-secret" not in json.dumps(event)


@pytest.mark.pg
def test_statement_timeout_is_503(
    sites: dict[str, StoreSite], tmp_path: Path, postgres_url: str
) -> None:
    site = sites["postgres"]
    schema = site.schema
    assert schema is not None
    view = sql.Identifier(schema, "slow_studies")
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("CREATE OR REPLACE VIEW {} AS SELECT s.* FROM {} AS s, pg_sleep(2)").format(
                view, sql.Identifier(schema, "studies")
            )
        )
    workspace = broken_copy(
        site, tmp_path, f"location: {schema}.studies", f"location: {schema}.slow_studies"
    )
    text = workspace.config_path.read_text().replace(
        "    url: file:keys/postgres.url",
        "    url: file:keys/postgres.url\n    statement_timeout_ms: 200",
    )
    workspace.config_path.write_text(text)
    with client_for(workspace) as client:
        response = client.post(
            "/v1/datasets/studies/query", json={"limit": 5}, headers=bearer(workspace, "erin")
        )
    assert response.status_code == 503
    event = audit_events(workspace)[-1]
    assert event["action"] == "request.failed"


# --- streams that stop early ----------------------------------------------------------


def _meta() -> RequestMeta:
    return RequestMeta(request_id=uuid.uuid4().hex, client="127.0.0.1", user_agent="test")


def _caller(gateway: Any, token: str) -> Any:
    return gateway.authenticate(f"Bearer {token}", _meta())


@pytest.mark.pg
@pytest.mark.usefixtures("ten_row_batches")
def test_abandoned_stream_returns_the_connection(sites: dict[str, StoreSite]) -> None:
    site = sites["postgres"]
    gateway = site.client.app.state.gateway  # type: ignore[attr-defined]
    pool = gateway.connectors["demo"]._pool
    caller = _caller(gateway, site.workspace.tokens["erin"])
    result = gateway.read(caller, "studies", orjson.dumps({"limit": 10_000}), None, _meta())
    first = next(result.chunks)
    assert first.startswith(b'{"dataset":"studies"')
    # The scan is suspended mid-stream, holding a connection in an open transaction.
    assert _open_transactions(site) >= 1
    result.delivery.handed_over(first)
    result.chunks.close()
    stats = pool.get_stats()
    assert stats["pool_available"] == stats["pool_size"]
    assert _open_transactions(site) == 0
    # The sender of an abandoned stream records what it delivered.
    result.delivery.finish(complete=False, reason="abandoned")
    event = audit_events(site.workspace)[-1]
    assert event["action"] == "data.read"
    assert event["complete"] is False and event["decision"] == "error"


class _ThreadRecordingConnector:
    """Wraps a real connector; notes the thread that makes each batch of its scans, and
    the one that closes them."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.made_on: list[str] = []
        self.closed_on: list[str] = []

    def schema(self, table: Any) -> Any:
        return self.inner.schema(table)

    def scan(self, table: Any, scan: Any, **kwargs: Any) -> Iterator[pa.RecordBatch]:
        try:
            for batch in self.inner.scan(table, scan, **kwargs):
                self.made_on.append(threading.current_thread().name)
                yield batch
        finally:
            self.closed_on.append(threading.current_thread().name)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def recording(
    local: StoreSite, monkeypatch: pytest.MonkeyPatch
) -> Iterator[_ThreadRecordingConnector]:
    """The local site's demo store, recording the threads of its scans, on a machine
    of two cores."""
    gateway = local.client.app.state.gateway  # type: ignore[attr-defined]
    recorder = _ThreadRecordingConnector(gateway.connectors["demo"])
    gateway.connectors["demo"] = recorder
    monkeypatch.setattr(rows, "_cores", lambda: 2)
    try:
        yield recorder
    finally:
        gateway.connectors["demo"] = recorder.inner


@pytest.mark.usefixtures("ten_row_batches")
def test_a_bulk_read_scans_and_transforms_ahead_on_threads_of_their_own(
    local: StoreSite, recording: _ThreadRecordingConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = local.client.app.state.gateway  # type: ignore[attr-defined]
    transformed_on: list[str] = []
    transform = rows.observability.transformed

    def recorded(transformer: Any, batch: pa.RecordBatch) -> pa.RecordBatch:
        transformed_on.append(threading.current_thread().name)
        return transform(transformer, batch)

    monkeypatch.setattr(rows.observability, "transformed", recorded)
    caller = _caller(gateway, local.workspace.tokens["erin"])
    body = orjson.dumps({"limit": 10_000})
    chunks = list(gateway.read(caller, "studies", body, ARROW, _meta()).chunks)
    assert pa.ipc.open_stream(b"".join(chunks)).read_all().num_rows > 10
    # Every batch of the many was made, and the scan closed, off the caller's thread.
    assert len(recording.made_on) > 1
    assert set(recording.made_on) == {"kiteline-scan-read-ahead"}
    assert recording.closed_on == ["kiteline-scan-read-ahead"]
    assert len(transformed_on) > 1
    assert set(transformed_on) == {"kiteline-transform-read-ahead"}
    # A read that one batch holds pays no thread.
    recording.made_on.clear()
    recording.closed_on.clear()
    transformed_on.clear()
    small = orjson.dumps({"limit": 5})
    list(gateway.read(caller, "studies", small, ARROW, _meta()).chunks)
    caller_thread = threading.current_thread().name
    assert recording.made_on == [caller_thread]
    assert recording.closed_on == [caller_thread]
    assert transformed_on == [caller_thread]
    # With a read under way on each core, the stages of the next run in one thread:
    # they would only compete for the cores.
    recording.made_on.clear()
    transformed_on.clear()
    other = gateway.inflight.add("someone", None, Cancellation())
    try:
        list(gateway.read(caller, "studies", body, ARROW, _meta()).chunks)
    finally:
        gateway.inflight.discard(other)
    assert len(recording.made_on) > 1
    assert set(recording.made_on) == {caller_thread}
    assert set(transformed_on) == {caller_thread}


def test_a_streamed_read_of_one_batch_runs_in_one_thread(
    local: StoreSite, recording: _ThreadRecordingConnector
) -> None:
    gateway = local.client.app.state.gateway  # type: ignore[attr-defined]
    caller = _caller(gateway, local.workspace.tokens["erin"])
    # Streamed (more rows than a buffered answer), but one batch holds them all.
    body = orjson.dumps({"limit": BUFFERED_READ_ROWS * 5})
    list(gateway.read(caller, "studies", body, ARROW, _meta()).chunks)
    assert recording.made_on == [threading.current_thread().name]


def _open_transactions(site: StoreSite) -> int:
    """Sessions left in a transaction that read this test's own demo schema."""
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%%'"
            " AND query LIKE %s",
            (f"%{site.schema}%",),
        ).fetchone()
    return int(row[0]) if row else 0


class _FailingConnector:
    """Wraps a real connector; its scan breaks after a first batch of ten rows."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def schema(self, table: Any) -> Any:
        return self.inner.schema(table)

    def scan(self, table: Any, scan: Any, **kwargs: Any) -> Iterator[pa.RecordBatch]:
        from connectors.base import StoreUnavailable

        batches = self.inner.scan(table, scan, **{**kwargs, "batch_size": 10})
        try:
            yield next(batches)
            raise StoreUnavailable("connection lost mid-scan")
        finally:
            batches.close()

    def close(self) -> None:
        self.inner.close()


@contextmanager
def served(app: Any, port: int) -> Iterator[str]:
    """The app on a real HTTP server on loopback, in a thread, for the block."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        assert server.started, "the test server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def ten_row_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway scans in batches of ten rows. It joins a store's batches up to the
    rows a read asks for, so the demo's small table would otherwise be scanned whole
    before the first row is handed on, and no read would be caught mid-scan."""
    monkeypatch.setattr(rows, "MIN_SCAN_BATCH_ROWS", 10)
    monkeypatch.setattr(rows, "MAX_SCAN_BATCH_ROWS", 10)


@contextmanager
def failing_store(
    site: StoreSite, tmp_path: Path, port: int
) -> Iterator[tuple[Workspace, str, Callable[[], list[dict[str, Any]]]]]:
    """A copy of the site served over HTTP whose demo store breaks after ten rows; with
    the workspace and base URL, the reads audited since the copy was made."""
    workspace = copy_workspace(site.workspace, tmp_path / "ws")
    already = len(audit_events(workspace))

    def reads_since() -> list[dict[str, Any]]:
        return [e for e in audit_events(workspace)[already:] if e["action"] == "data.read"]

    app = create_app(Settings(config=workspace.config_path))
    with served(app, port) as base:
        gateway = app.state.gateway
        gateway.connectors["demo"] = _FailingConnector(gateway.connectors["demo"])
        yield workspace, base, reads_since


ARROW = "application/vnd.apache.arrow.stream"
ARROW_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


@pytest.mark.usefixtures("ten_row_batches")
def test_stream_failing_midway_is_detectably_incomplete(
    site: StoreSite, tmp_path: Path, unused_port: int
) -> None:
    with failing_store(site, tmp_path, unused_port) as (workspace, base, reads_since):
        received: dict[str, bytes] = {}
        for accept in ("application/json", "application/vnd.apache.arrow.stream"):
            body = bytearray()
            headers = {**bearer(workspace, "erin"), "Accept": accept}
            with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
                with httpx.stream(
                    "POST",
                    f"{base}/v1/datasets/studies/query",
                    # Past the buffered size, so the answer is streamed and cut.
                    json={"limit": BUFFERED_READ_ROWS + 1},
                    headers=headers,
                    timeout=30,
                ) as response:
                    assert response.status_code == 200
                    for chunk in response.iter_bytes():
                        body.extend(chunk)
            received[accept] = bytes(body)
    # What did arrive has rows but never the closing part of its format.
    assert b'"rows":[{' in received["application/json"]
    assert b"next_cursor" not in received["application/json"]
    assert not received["application/vnd.apache.arrow.stream"].endswith(ARROW_EOS)
    reads = reads_since()
    assert len(reads) == 2
    assert all(e["complete"] is False for e in reads)
    assert reads[0]["reasons"] == [
        "the store holding this dataset is unavailable; no data was returned"
    ]


@pytest.mark.usefixtures("ten_row_batches")
def test_small_read_failing_midway_is_a_clean_problem(
    site: StoreSite, tmp_path: Path, unused_port: int
) -> None:
    # A small answer is built whole before it is sent: a store failing in the middle
    # gives a problem response and no rows at all, and the read is recorded incomplete.
    with failing_store(site, tmp_path, unused_port) as (workspace, base, reads_since):
        response = httpx.post(
            f"{base}/v1/datasets/studies/query",
            json={"limit": 100},
            headers=bearer(workspace, "erin"),
            timeout=30,
        )
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "rows" not in response.json()
    reads = reads_since()
    assert [e["complete"] for e in reads] == [False]


@pytest.mark.parametrize("limit", [100, BUFFERED_READ_ROWS + 1], ids=["small", "streamed"])
def test_store_failing_before_the_first_batch_is_a_recorded_problem(
    site: StoreSite, tmp_path: Path, unused_port: int, limit: int
) -> None:
    # The gateway's first batch wants more than the ten rows the store gives before it
    # breaks: the failure comes before any byte is sent, small answer or streamed.
    with failing_store(site, tmp_path, unused_port) as (workspace, base, reads_since):
        spent = rows_spent(workspace)
        response = httpx.post(
            f"{base}/v1/datasets/studies/query",
            json={"limit": limit},
            headers=bearer(workspace, "erin"),
            timeout=30,
        )
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "rows" not in response.json()
    # Its reserved rows are given back once: the budget is as it was.
    assert rows_spent(workspace) == spent
    reads = reads_since()
    assert [(e["complete"], e["rows"]) for e in reads] == [(False, 0)]
    assert reads[0]["reasons"] == [
        "the store holding this dataset is unavailable; no data was returned"
    ]
