"""Whole-dataset exports: every format pages through a grant-sized extract by cursor.

The gateway caps each request (10,000 rows in the demo); a 50,000-row extract comes
in pages, each decided, budgeted and audited like any read. The next page's cursor
is in JSON's ``next_cursor``, in the custom metadata of Arrow's last (empty) batch
and in the Parquet footer; CSV, which has nowhere after its rows, gets the
``X-Kiteline-Resume-Cursor`` header."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from gateway.read.encoders import NEXT_CURSOR_KEY
from tests.conftest import bearer, client_for

ROWS = 50_000  # the demo's studies
KEY = NEXT_CURSOR_KEY.encode()


@pytest.fixture
def exports(workspace: Workspace):
    text = workspace.config_path.read_text(encoding="utf-8")
    workspace.config_path.write_text(
        text + "\nbudgets:\n  rows_per_day: 1000000\n  rows_total: 1000000\n", encoding="utf-8"
    )
    with client_for(workspace) as client:
        yield client


def page_json(response: Any) -> tuple[pa.Table, str | None]:
    data = response.json()
    return pa.Table.from_pylist(data["rows"]), data["next_cursor"]


def page_arrow(response: Any) -> tuple[pa.Table, str | None]:
    reader = pa.ipc.open_stream(response.content)
    batches, cursor = [], None
    while True:
        try:
            batch, metadata = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            break
        if metadata is not None and KEY in metadata:
            cursor = metadata[KEY].decode()
        batches.append(batch)
    return pa.Table.from_batches(batches, schema=reader.schema), cursor


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
    ("media", "who"),
    [(media, "mei") for media in FORMATS if media != "text/csv"]
    + [(media, "erin") for media in FORMATS],
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


def test_under_suppression_csv_names_no_resume_cursor(exports: TestClient, workspace: Workspace):
    response = exports.post(
        "/v1/datasets/studies/query",
        json={"columns": ["modality"], "limit": 10, "purpose": SURGICAL_PURPOSE},
        headers={**bearer(workspace, "mei"), "Accept": "text/csv"},
    )
    assert response.status_code == 200
    assert "x-kiteline-resume-cursor" not in response.headers


def test_a_page_with_more_after_it_names_its_cursor(exports: TestClient, workspace: Workspace):
    for media, parse in FORMATS.items():
        response = exports.post(
            "/v1/datasets/studies/query",
            json={"columns": ["modality"], "limit": 5, "purpose": SURGICAL_PURPOSE},
            headers={**bearer(workspace, "mei"), "Accept": media},
        )
        table, cursor = parse(response)
        assert table.num_rows == 5
        if media != "text/csv":
            assert cursor is not None, media  # more rows follow
        else:
            assert cursor is None  # a CSV page that is not full is the last
