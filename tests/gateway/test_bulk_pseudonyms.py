"""Bulk reads whose identifiers the store hands over dictionary-encoded: every
identifier is still its recipient's keyed pseudonym, nulls stay null, and the answer
is the same as without the encoding."""

from __future__ import annotations

import io
from collections.abc import Iterator

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from connectors import local
from gateway.demo.workspace import ALUMNI_PURPOSE, Workspace
from gateway.transforms.pseudonyms import prefix_for, pseudonym_of
from tests.conftest import bearer, client_for

ARROW = "application/vnd.apache.arrow.stream"


@pytest.fixture
def studies(workspace: Workspace) -> pa.Table:
    """The demo's studies, with few patients (and some missing): a column worth
    encoding."""
    path = workspace.root / "data/imaging/studies.parquet"
    table = pq.read_table(path)
    patients = [None if i % 11 == 0 else f"P{i % 300:06d}" for i in range(table.num_rows)]
    index = table.schema.get_field_index("patient_id")
    table = table.set_column(index, "patient_id", pa.array(patients, pa.string()))
    pq.write_table(table, path)
    return table


@pytest.fixture
def client(workspace: Workspace, studies: pa.Table) -> Iterator[TestClient]:  # noqa: ARG001
    with client_for(workspace) as test_client:
        yield test_client


def _read(client: TestClient, ws: Workspace, who: str, body: dict) -> pa.Table:
    response = client.post(
        "/v1/datasets/studies/query",
        content=orjson.dumps(body),
        headers={**bearer(ws, who), "Accept": ARROW},
    )
    assert response.status_code == 200, response.text
    return pa.ipc.open_stream(io.BytesIO(response.content)).read_all()


def _encoded_scans(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the type of ``patient_id`` in every batch the demo store scans."""
    store = client.app.state.gateway.connectors["demo"]  # type: ignore[attr-defined]
    seen: list[str] = []
    real = store.scan

    def scan(*args: object, **kwargs: object) -> Iterator[pa.RecordBatch]:
        for batch in real(*args, **kwargs):
            if "patient_id" in batch.schema.names:
                seen.append(str(batch.schema.field("patient_id").type))
            yield batch

    monkeypatch.setattr(store, "scan", scan)
    return seen


def test_a_bulk_read_pseudonymizes_every_encoded_identifier(
    client: TestClient, workspace: Workspace, studies: pa.Table, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(local, "DICTIONARY_MIN_ROWS", 1000)
    seen = _encoded_scans(client, monkeypatch)
    gateway = client.app.state.gateway  # type: ignore[attr-defined]
    key = gateway.keyring.pseudonym_key("user:erin", "patient", 1)
    prefix = prefix_for(1, gateway.keyring.recipient_tag("user:erin", 1))
    source = studies.column("patient_id").to_pylist()[:10_000]
    expected = [None if v is None else pseudonym_of(v, key=key, prefix=prefix) for v in source]
    body = {"columns": ["patient_id", "modality"], "limit": 10_000}
    first = _read(client, workspace, "erin", body)  # keys every patient
    second = _read(client, workspace, "erin", body)  # from the recipient's cache
    assert seen and all(t.startswith("dictionary") for t in seen)
    for table in (first, second):
        assert table.schema.field("patient_id").type == pa.string()
        assert table.column("patient_id").to_pylist() == expected
    assert table.column("modality") == studies.column("modality").slice(0, 10_000)
    # Without the encoding the answer is the same, byte for byte in its values.
    monkeypatch.setattr(local, "DICTIONARY_MIN_ROWS", 10**9)
    seen.clear()
    assert _read(client, workspace, "erin", body) == first
    assert seen and all(t == "string" for t in seen)


def test_an_anonymized_bulk_read_is_the_same_with_and_without_the_encoding(
    workspace: Workspace, studies: pa.Table, monkeypatch: pytest.MonkeyPatch
):
    """k-anonymity suppression filters encoded batches before the pseudonyms."""
    body = {"limit": 10_000, "purpose": ALUMNI_PURPOSE}
    answers = []
    for least, kind in ((1000, "dictionary"), (10**9, "string")):
        monkeypatch.setattr(local, "DICTIONARY_MIN_ROWS", least)
        with client_for(workspace) as client:
            seen = _encoded_scans(client, monkeypatch)
            answers.append(_read(client, workspace, "lin", body))
        assert seen and all(t.startswith(kind) for t in seen)
    assert answers[0] == answers[1]
    ids = answers[0].column("patient_id")
    assert ids.null_count > 0
    assert pc.all(pc.starts_with(ids.drop_null(), "p1_")).as_py()
    assert not set(ids.to_pylist()) & set(studies.column("patient_id").to_pylist()) - {None}
