"""Whole-dataset exports: every format pages through a grant-sized extract by cursor.

The gateway caps each request (10,000 rows in the demo); a 50,000-row extract comes
in pages, each decided, budgeted and audited like any read. The next page's cursor
is in JSON's ``next_cursor``, in the custom metadata of Arrow's last (empty) batch
and in the Parquet footer; CSV, which has nowhere after its rows, gets the
``X-Kiteline-Resume-Cursor`` header (under k-suppression too, where the gateway counts
the rows a page will keep before it answers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from kiteline_client.arrow_stream import read_page

from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from gateway.read.encoders import NEXT_CURSOR_KEY
from tests.conftest import bearer, client_for
from tests.serving import serve_gateway

ROWS = 50_000  # the demo's studies
KEY = NEXT_CURSOR_KEY.encode()
FORMATS_ARROW = "application/vnd.apache.arrow.stream"


@pytest.fixture
def export_workspace(workspace: Workspace) -> Workspace:
    text = workspace.config_path.read_text(encoding="utf-8")
    workspace.config_path.write_text(
        text + "\nbudgets:\n  rows_per_day: 1000000\n  rows_total: 1000000\n", encoding="utf-8"
    )
    return workspace


@pytest.fixture
def exports(export_workspace: Workspace):
    with client_for(export_workspace) as client:
        yield client


def page_json(response: Any) -> tuple[pa.Table, str | None]:
    data = response.json()
    return pa.Table.from_pylist(data["rows"]), data["next_cursor"]


def page_arrow(response: Any) -> tuple[pa.Table, str | None]:
    page = read_page(response)
    return pa.Table.from_batches(page.batches, schema=page.schema), page.cursor


def page_parquet(response: Any) -> tuple[pa.Table, str | None]:
    file = pq.ParquetFile(pa.BufferReader(response.content))
    metadata = file.metadata.metadata or {}
    cursor = metadata.get(KEY)
    return file.read(), cursor.decode() if cursor is not None else None


def page_csv(response: Any) -> tuple[pa.Table, str | None]:
    table = pacsv.read_csv(pa.py_buffer(response.content))
    # A full page may have a next one; a short page is the last.
    cursor = response.headers.get("x-kiteline-resume-cursor")
    return table, cursor if table.num_rows == 10_000 else None


FORMATS: dict[str, Callable[[Any], tuple[pa.Table, str | None]]] = {
    "application/json": page_json,
    "application/vnd.apache.arrow.stream": page_arrow,
    "application/vnd.apache.parquet": page_parquet,
    "text/csv": page_csv,
}


# mei's anonymized grant suppresses rare quasi-identifier groups; erin's pseudonymized
# one does not.
READERS = {"mei": SURGICAL_PURPOSE, "erin": None}


@pytest.mark.parametrize(
    ("media", "who"), [(media, who) for media in FORMATS for who in ("mei", "erin")]
)
def test_every_format_pages_through_the_whole_extract(
    exports: TestClient, workspace: Workspace, media: str, who: str
):
    headers = {**bearer(workspace, who), "Accept": media}
    body: dict[str, Any] = {
        "columns": ["study_id", "modality"],
        "limit": 10_000,
        "purpose": READERS[who],
    }
    ids: list[str] = []
    seqs = set()
    cursor: str | None = None
    pages = 0
    while True:
        response = exports.post(
            "/v1/datasets/studies/query",
            json={**body, **({"cursor": cursor} if cursor else {})},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(media)
        seqs.add(response.headers["x-kiteline-audit-seq"])
        table, cursor = FORMATS[media](response)
        pages += 1
        ids += table.column("study_id").to_pylist()
        if cursor is None:
            break
        assert pages < 10
    assert len(ids) == ROWS and len(set(ids)) == ROWS
    assert len(seqs) == pages  # every page is its own audited read
    assert pages in (5, 6)  # 5 full pages, and an empty sixth when the end was not proved


def test_a_page_past_the_per_request_cap_is_refused_with_the_cap(
    exports: TestClient, workspace: Workspace
):
    response = exports.post(
        "/v1/datasets/studies/query",
        json={"limit": 50_000, "purpose": SURGICAL_PURPOSE},
        headers={**bearer(workspace, "mei"), "Accept": "application/vnd.apache.parquet"},
    )
    assert response.status_code == 400
    assert response.json()["max_rows"] == 10_000


def test_under_suppression_csv_resumes_where_the_other_formats_do(
    exports: TestClient, workspace: Workspace
):
    body = {"columns": ["modality"], "limit": 10, "purpose": SURGICAL_PURPOSE}
    headers = bearer(workspace, "mei")
    answers = {
        media: exports.post(
            "/v1/datasets/studies/query", json=body, headers={**headers, "Accept": media}
        )
        for media in ("text/csv", "application/json")
    }
    assert answers["text/csv"].status_code == 200
    cursor = answers["text/csv"].headers["x-kiteline-resume-cursor"]
    assert cursor == answers["application/json"].json()["next_cursor"]


def csv_export_ids(http: httpx.Client | TestClient, workspace: Workspace) -> list[str]:
    """An anonymized CSV export of the studies, led from page to page by the header
    alone: the last page is the one without it."""
    body: dict[str, Any] = {"columns": ["study_id"], "limit": 10_000, "purpose": SURGICAL_PURPOSE}
    headers = {**bearer(workspace, "mei"), "Accept": "text/csv"}
    ids: list[str] = []
    for _ in range(10):
        response = http.post("/v1/datasets/studies/query", json=body, headers=headers)
        assert response.status_code == 200, response.text
        ids += pacsv.read_csv(pa.py_buffer(response.content)).column("study_id").to_pylist()
        cursor = response.headers.get("x-kiteline-resume-cursor")
        if cursor is None:
            return ids
        body["cursor"] = cursor
    raise AssertionError("the CSV pages never ended")


def test_under_suppression_csv_pages_end_where_the_rows_do(
    exports: TestClient, workspace: Workspace
):
    ids = csv_export_ids(exports, workspace)
    assert len(ids) == ROWS and len(set(ids)) == ROWS


@pytest.mark.slow
def test_an_anonymized_csv_export_resumes_over_http(export_workspace: Workspace, tmp_path: Path):
    # A real `kiteline serve`; the pages are the ones an Arrow export gets.
    with (
        serve_gateway(export_workspace.config_path, tmp_path / "serve.log") as url,
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        ids = csv_export_ids(http, export_workspace)
        arrow = http.post(
            "/v1/datasets/studies/query",
            json={"columns": ["study_id"], "limit": 10_000, "purpose": SURGICAL_PURPOSE},
            headers={**bearer(export_workspace, "mei"), "Accept": FORMATS_ARROW},
        )
    first, _ = page_arrow(arrow)
    assert ids[:10_000] == first.column("study_id").to_pylist()
    assert len(ids) == ROWS and len(set(ids)) == ROWS


def test_a_page_with_more_after_it_names_its_cursor(exports: TestClient, workspace: Workspace):
    for media, parse in FORMATS.items():
        response = exports.post(
            "/v1/datasets/studies/query",
            json={"columns": ["modality"], "limit": 5, "purpose": SURGICAL_PURPOSE},
            headers={**bearer(workspace, "mei"), "Accept": media},
        )
        table, cursor = parse(response)
        assert table.num_rows == 5
        if media == "text/csv":
            cursor = response.headers.get("x-kiteline-resume-cursor")
        assert cursor is not None, media  # more rows follow
