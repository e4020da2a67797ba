"""Anonymized reads through the API: k-anonymous rows, row budgets, cursors and caps."""

from __future__ import annotations

import io
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from connectors.derived import BLOCK_ROWS, Deriver
from gateway.access import budgets
from gateway.demo.workspace import ALUMNI_PURPOSE, SURGICAL_PURPOSE, Workspace
from gateway.service import BUFFERED_READ_ROWS
from gateway.state.database import create_state_engine
from gateway.transforms import profile
from gateway.transforms.kanonymity import ClassIndex
from tests.conftest import bearer, client_for

ARROW = "application/vnd.apache.arrow.stream"
QIS = ["birth_date", "gender", "zip"]


def read(client: TestClient, ws: Workspace, body: dict, accept: str = "application/json"):
    return client.post(
        "/v1/datasets/patients/query",
        content=orjson.dumps(body),
        headers={**bearer(ws, "mei"), "Accept": accept},
    )


def surgibot_grant(ws: Workspace) -> int:
    engine = create_state_engine(ws.config.state_url)
    with engine.connect() as conn:
        grant_id = conn.exec_driver_sql(
            "SELECT id FROM grants WHERE subject = 'surgibot' AND dataset = 'patients'"
        ).scalar_one()
    engine.dispose()
    return int(grant_id)


def set_limits(ws: Workspace, **limits: int) -> None:
    engine = create_state_engine(ws.config.state_url)
    budgets.set_limits(engine, surgibot_grant(ws), **limits)
    engine.dispose()


def min_class(table: pa.Table, k_columns: list[str]) -> int:
    conn = duckdb.connect()
    conn.register("t", table)
    keys = ", ".join(k_columns)
    return conn.execute(
        f"SELECT min(n) FROM (SELECT count(*) n FROM t GROUP BY {keys})"
    ).fetchone()[0]


def test_mei_gets_k_anonymous_rows_of_the_whole_dataset(client: TestClient, workspace: Workspace):
    response = read(client, workspace, {"limit": 10_000, "purpose": SURGICAL_PURPOSE}, ARROW)
    assert response.status_code == 200, response.text
    table = pa.ipc.open_stream(io.BytesIO(response.content)).read_all()
    assert table.num_rows > 9_000  # the demo's generalizations keep most rows
    assert min_class(table, QIS) >= workspace.config.datasets["patients"].k
    assert response.headers["x-kiteline-rows-remaining-today"].isdigit()


def test_stricter_k_suppresses_more_and_pages_skip_suppressed_rows(workspace: Workspace):
    text = workspace.config_path.read_text().replace("    k: 5\n", "    k: 40\n", 1)
    workspace.config_path.write_text(text)
    with client_for(workspace) as strict:
        whole = read(strict, workspace, {"limit": 10_000, "purpose": SURGICAL_PURPOSE}, ARROW)
        table = pa.ipc.open_stream(io.BytesIO(whole.content)).read_all()
        assert 0 < table.num_rows < 10_000
        assert min_class(table, QIS) >= 40
        # Paging with cursors yields the same rows, each page full until the last.
        seen, cursor, pages = [], None, 0
        while True:
            page = read(
                strict, workspace, {"limit": 3000, "cursor": cursor, "purpose": SURGICAL_PURPOSE}
            ).json()
            pages += 1
            seen += [r["patient_id"] for r in page["rows"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert len(page["rows"]) == 3000
        assert seen == table.column("patient_id").to_pylist()
        assert pages in (-(-table.num_rows // 3000), -(-table.num_rows // 3000) + 1)


def test_row_budget_headers_and_refund_of_unsent_rows(client: TestClient, workspace: Workspace):
    set_limits(workspace, rows_per_day=1000, rows_total=5000)
    first = read(client, workspace, {"limit": 400, "purpose": SURGICAL_PURPOSE})
    assert first.status_code == 200
    assert first.headers["x-kiteline-rows-remaining-today"] == "600"
    assert first.headers["x-kiteline-rows-remaining-total"] == "4600"
    # Only 600 remain today: a larger page is cut to what is left, then refused.
    second = read(client, workspace, {"limit": 1000, "purpose": SURGICAL_PURPOSE})
    assert second.status_code == 200 and len(second.json()["rows"]) == 600
    third = read(client, workspace, {"limit": 1, "purpose": SURGICAL_PURPOSE})
    assert third.status_code == 429
    problem = third.json()
    assert problem["budget"] == "rows today" and "exhausted" in problem["detail"]


def test_a_cursor_cannot_page_past_the_total_cap(client: TestClient, workspace: Workspace):
    set_limits(workspace, rows_total=250)
    cursor, received, statuses = None, 0, []
    for _ in range(5):
        response = read(
            client, workspace, {"limit": 100, "cursor": cursor, "purpose": SURGICAL_PURPOSE}
        )
        statuses.append(response.status_code)
        if response.status_code != 200:
            break
        received += len(response.json()["rows"])
        cursor = response.json()["next_cursor"]
    assert received == 250
    assert statuses == [200, 200, 200, 429]


def test_per_request_cap_of_the_grant(client: TestClient, workspace: Workspace):
    set_limits(workspace, rows_per_request=50)
    response = read(client, workspace, {"limit": 51, "purpose": SURGICAL_PURPOSE})
    assert response.status_code == 400 and response.json()["max_rows"] == 50


def test_limits_set_while_serving_apply_to_the_next_request(
    client: TestClient, workspace: Workspace
):
    # The first read caches the grant's limits; setting new ones (as another process
    # would) bumps the grants version, so the very next request sees them.
    assert read(client, workspace, {"limit": 60, "purpose": SURGICAL_PURPOSE}).status_code == 200
    set_limits(workspace, rows_per_request=50)
    response = read(client, workspace, {"limit": 60, "purpose": SURGICAL_PURPOSE})
    assert response.status_code == 400 and response.json()["max_rows"] == 50


def test_pages_agree_with_and_without_columns_derived_by_the_store(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
):
    """The local store derives generalized, scrubbed and pseudonym columns and the keep
    mask once per file version; pages must be exactly what the per-page transforms give."""
    text = workspace.config_path.read_text().replace("    k: 5\n", "    k: 40\n", 1)
    workspace.config_path.write_text(text)
    bodies = [
        {"limit": 1},
        {"limit": 100},
        {"limit": 57, "columns": ["birth_date", "zip", "notes"]},
        {"limit": 2500},
    ]
    kept_rows: list[int] = []
    keep = ClassIndex.keep

    def counting_keep(self: ClassIndex, batch: pa.RecordBatch) -> pa.BooleanArray:
        kept_rows.append(batch.num_rows)
        return keep(self, batch)

    monkeypatch.setattr(ClassIndex, "keep", counting_keep)
    # The rows each generalization ("keep" hands values over untouched) and each scrub
    # worked on.
    transformed_rows: list[int] = []
    generalize, scrub = profile.generalization.generalize, profile.scrub

    def counting_generalize(values: pa.Array, rule: str) -> pa.Array:
        if rule != "keep":
            transformed_rows.append(len(values))
        return generalize(values, rule)

    def counting_scrub(texts: pa.Array, *args: object, **kwargs: object) -> pa.Array:
        transformed_rows.append(len(texts))
        return scrub(texts, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(profile.generalization, "generalize", counting_generalize)
    monkeypatch.setattr(profile, "scrub", counting_scrub)
    # And the rows each pseudonymization worked on: pages take the recipient's own
    # derived column; a bulk read maps its identifiers batch by batch.
    pseudonymized_rows: list[int] = []
    pseudonymize = profile.pseudonyms.pseudonymize

    def counting_pseudonymize(values: pa.Array, **kwargs: Any) -> pa.Array:
        pseudonymized_rows.append(len(values))
        return pseudonymize(values, **kwargs)

    monkeypatch.setattr(profile.pseudonyms, "pseudonymize", counting_pseudonymize)

    def pages() -> list[object]:
        answers: list[object] = []
        with client_for(workspace) as reader:
            for body in bodies:
                cursor = None
                for _ in range(3):
                    page = read(
                        reader,
                        workspace,
                        {**body, "cursor": cursor, "purpose": SURGICAL_PURPOSE},
                    )
                    assert page.status_code == 200, page.text
                    answers.append(page.json()["rows"])
                    cursor = page.json()["next_cursor"]
        return answers

    derived = pages()
    # Every page took what the store derived: the mask, the generalized, scrubbed and
    # pseudonym columns were computed over its blocks only (and the class index over the
    # whole file), never over a page.
    blocks = {BLOCK_ROWS, 10_000 - BLOCK_ROWS}
    assert kept_rows and set(kept_rows) <= blocks
    assert transformed_rows and set(transformed_rows) <= blocks | {10_000}
    assert all(n in blocks or n > BUFFERED_READ_ROWS for n in pseudonymized_rows)
    assert BLOCK_ROWS in pseudonymized_rows
    monkeypatch.setattr(Deriver, "columns", lambda *_: [])
    kept_rows.clear()
    transformed_rows.clear()
    pseudonymized_rows.clear()
    assert pages() == derived
    assert kept_rows and not set(kept_rows) & blocks
    assert transformed_rows and not set(transformed_rows) & blocks
    assert {1, 100} <= set(pseudonymized_rows) and not set(pseudonymized_rows) & blocks


def test_a_page_whose_batch_proves_a_next_page_reads_no_further(
    client: TestClient, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
):
    batches: list[int] = []
    columns = Deriver.columns

    def counting(self: Deriver, start: int, rows: int) -> list[tuple[str, pa.Array]]:
        batches.append(rows)
        return columns(self, start, rows)

    monkeypatch.setattr(Deriver, "columns", counting)
    for _ in range(2):  # the first read builds the blocks in a worker thread
        page = read(client, workspace, {"limit": 100, "purpose": SURGICAL_PURPOSE})
        assert page.status_code == 200, page.text
        assert len(page.json()["rows"]) == 100 and page.json()["next_cursor"] is not None
    # One scanned batch per read (more than 100 rows): nothing read past it.
    assert len(batches) == 2 and min(batches) > 100


def test_each_recipient_gets_its_own_derived_pseudonyms(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
):
    # mei reads first, so the blocks exist when lin reads the same rows: lin's page must
    # carry lin's pseudonyms, exactly those lin's per-page transform gives.
    purposes = {"mei": SURGICAL_PURPOSE, "lin": ALUMNI_PURPOSE}

    def page(reader: TestClient, who: str) -> list[dict[str, str]]:
        body = {"limit": 100, "purpose": purposes[who]}
        response = reader.post(
            "/v1/datasets/patients/query",
            content=orjson.dumps(body),
            headers=bearer(workspace, who),
        )
        assert response.status_code == 200, response.text
        rows: list[dict[str, str]] = response.json()["rows"]
        return rows

    built: list[int] = []
    build = Deriver._build

    def counting_build(self: Deriver, *args: Any, **kwargs: Any) -> Any:
        built.append(1)
        return build(self, *args, **kwargs)

    monkeypatch.setattr(Deriver, "_build", counting_build)
    with client_for(workspace) as reader:
        derived = {who: [page(reader, who) for _ in range(2)] for who in ("mei", "lin")}
    assert built  # the first reads built blocks; the second of each took them
    monkeypatch.setattr(Deriver, "columns", lambda *_: [])
    with client_for(workspace) as reader:
        computed = {who: page(reader, who) for who in ("mei", "lin")}
    for who in ("mei", "lin"):
        assert derived[who][0] == derived[who][1] == computed[who]
    mei, lin = computed["mei"], computed["lin"]
    assert [r["birth_date"] for r in mei] == [r["birth_date"] for r in lin]
    assert not {r["patient_id"] for r in mei} & {r["patient_id"] for r in lin}
