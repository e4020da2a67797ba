"""No returned cell of a non-raw profile equals (or, in free text, contains) a source
direct identifier."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.access.keyring import Keyring
from gateway.demo.workspace import Workspace
from gateway.read.views import build_view
from gateway.state.database import create_state_engine
from gateway.transforms.profile import BatchTransformer
from tests.conftest import add_test_grant, bearer
from tests.gateway.conftest import dataset_and_schema

DIRECT = ("name", "national_id", "phone")


@pytest.mark.parametrize("profile", ["pseudonymized", "anonymized"])
def test_no_returned_cell_is_a_source_direct_identifier(
    client: TestClient, workspace: Workspace, profile: str
):
    engine = create_state_engine(workspace.config.state_url)
    add_test_grant(engine, workspace.config, "erin", "pseudonymized", dataset="patients", days=1)
    engine.dispose()
    response = client.post(
        "/v1/datasets/patients/query",
        headers=bearer(workspace, "erin"),
        content=orjson.dumps({"limit": 10_000, "profile": profile}),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["profile"] == profile and len(body["rows"]) == 10_000
    source = pq.read_table(workspace.root / "data/imaging/patients.parquet")
    secrets = {v for c in DIRECT for v in source.column(c).to_pylist() if v}
    cells = [v for row in body["rows"] for v in row.values() if isinstance(v, str)]
    assert not secrets.intersection(cells)
    numbers = {v for c in ("national_id", "phone") for v in source.column(c).to_pylist()}
    notes = [row["notes"] for row in body["rows"] if row.get("notes")]
    assert notes
    leaked = [n for n in notes if any(num in n for num in numbers)]
    assert not leaked, leaked[:3]


def test_aggregate_profile_returns_no_rows(client: TestClient, workspace: Workspace):
    response = client.post(
        "/v1/datasets/customers/query",
        headers=bearer(workspace, "sam"),
        content=orjson.dumps({"purpose": "market analysis"}),
    )
    assert response.status_code == 403


DATASET, SCHEMA = dataset_and_schema(
    {
        "pid": ({"class": "identifier", "domain": "patient"}, pa.string()),
        "name": ({"class": "direct_identifier", "mask": "name"}, pa.string()),
        "phone": ({"class": "direct_identifier", "mask": "phone"}, pa.string()),
        "email": ({"class": "direct_identifier", "mask": "email"}, pa.string()),
        "notes": ("free_text", pa.string()),
        "age": ({"class": "quasi_identifier", "generalize": "band:10"}, pa.int64()),
    }
)

names = st.text(alphabet="张王李赵刘陈杨黄周吴伟芳娜敏静丽强磊军洋", min_size=2, max_size=4)
phones = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)
emails = st.from_regex(r"[a-z]{3,8}\.[a-z]{2,6}@[a-z]{3,8}\.(com|cn)", fullmatch=True)
row = st.tuples(
    st.from_regex(r"P[0-9]{6}", fullmatch=True), names, phones, emails, st.integers(0, 99)
)


@settings(max_examples=60, deadline=None)
@given(st.lists(row, min_size=1, max_size=30), st.sampled_from(["pseudonymized", "anonymized"]))
def test_transforms_never_emit_an_input_direct_identifier(rows: list[tuple], profile: str):
    pids, people, phone_numbers, mails, ages = map(list, zip(*rows, strict=True))
    notes = [
        f"患者{n}电话{p}，邮箱{m}" for n, p, m in zip(people, phone_numbers, mails, strict=True)
    ]
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array(pids),
            pa.array(people),
            pa.array(phone_numbers),
            pa.array(mails),
            pa.array(notes),
            pa.array(ages, pa.int64()),
        ],
        schema=SCHEMA,
    )
    view = build_view("t", DATASET, SCHEMA, profile)  # type: ignore[arg-type]
    transformer = BatchTransformer(
        view, view.returned, keyring=Keyring(b"\x01" * 32), recipient="org:x"
    )
    out = transformer(batch.select(transformer.source_columns))
    inputs = set(pids) | set(people) | set(phone_numbers) | set(mails)
    for column in out.columns:
        for value in column.to_pylist():
            if isinstance(value, str):
                assert value not in inputs
                assert not any(p in value for p in phone_numbers + mails)
