"""Leak tracing: a leaked extract names its recipient, with evidence; nothing else does."""

from __future__ import annotations

import io
import json
import random
import secrets
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from gateway.access.keyring import Keyring
from gateway.auditing.leak_tracing import source_reader, trace
from gateway.cli.main import cli
from gateway.config import load_config
from gateway.demo.workspace import ALUMNI_PURPOSE, SURGICAL_PURPOSE, Workspace
from gateway.read.stores import build_connectors
from tests.conftest import bearer, client_for


def leaked_rows(
    client: TestClient,
    ws: Workspace,
    who: str = "mei",
    purpose: str = SURGICAL_PURPOSE,
    rows: int = 20,
    dataset: str = "patients",
) -> pa.Table:
    response = client.post(
        f"/v1/datasets/{dataset}/query",
        headers={**bearer(ws, who), "Accept": "application/vnd.apache.arrow.stream"},
        content=orjson.dumps({"limit": 500, "purpose": purpose}),
    )
    assert response.status_code == 200, response.text
    table = pa.ipc.open_stream(io.BytesIO(response.content)).read_all()
    picks = sorted(random.Random(5).sample(range(table.num_rows), rows))
    return table.take(pa.array(picks))


def run_cli(ws: Workspace, *args: str, who: str = "victor") -> tuple[int, str]:
    result = CliRunner(env={"KITELINE_TOKEN": ws.tokens[who]}).invoke(
        cli, ["--config", str(ws.config_path), *args]
    )
    return result.exit_code, result.output


def write_csv(table: pa.Table, path: Path) -> Path:
    pacsv.write_csv(table, path)
    return path


def report_of(output: str) -> dict:
    return json.loads(output[output.index("{") :])


def test_cli_trace_names_surgibot_for_rows_of_meis_response(
    client: TestClient, workspace: Workspace, tmp_path: Path
):
    leak = write_csv(leaked_rows(client, workspace), tmp_path / "leak.csv")
    code, out = run_cli(workspace, "trace", str(leak))
    assert code == 0, out
    report = report_of(out)
    assert report["verdict"] == "attributed to org:surgibot"
    [evidence] = report["attributed"]
    assert evidence["matched_rows"] == 20 and evidence["key_version"] == 1
    assert evidence["domains"] == {"patient": 20}
    assert evidence["columns"] == ["patient_id"]
    code, out = run_cli(workspace, "audit", "tail", "-n", "1", "--json")
    event = json.loads(out.splitlines()[-1])
    assert event["action"] == "audit.tail"
    code, out = run_cli(workspace, "audit", "search", "--action", "trace.*", "--json")
    [event] = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert event["actor"] == "victor"
    assert event["action"] == "trace.hit" and event["verdict"] == "attributed to org:surgibot"


@pytest.mark.parametrize("kind", ["csv", "parquet", "jsonl"])
def test_every_format_and_another_recipients_extract(
    client: TestClient, workspace: Workspace, tmp_path: Path, kind: str
):
    lin = leaked_rows(client, workspace, who="lin", purpose=ALUMNI_PURPOSE, dataset="studies")
    path = tmp_path / f"leak.{kind}"
    if kind == "csv":
        write_csv(lin, path)
    elif kind == "parquet":
        pq.write_table(lin, path)
    else:
        path.write_bytes(b"\n".join(orjson.dumps(r) for r in lin.to_pylist()))
    code, out = run_cli(workspace, "trace", str(path))
    assert code == 0, out
    assert [e["recipient"] for e in report_of(out)["attributed"]] == ["user:lin"]


def test_forged_and_random_pseudonyms_are_never_attributed(
    client: TestClient, workspace: Workspace, tmp_path: Path
):
    genuine = leaked_rows(client, workspace).column("patient_id").to_pylist()
    tag = genuine[0].split("_")[1]
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    forged = [
        f"p1_{tag}_" + "".join(secrets.choice(alphabet) for _ in range(24)) for _ in range(50)
    ]
    noise = [secrets.token_hex(16) for _ in range(50)]
    path = write_csv(pa.table({"patient_id": forged, "other": noise}), tmp_path / "forged.csv")
    code, out = run_cli(workspace, "trace", str(path))
    assert code == 1
    report = report_of(out)
    assert report["verdict"] == "not attributed" and report["tag_candidates"] == ["org:surgibot"]


def test_twenty_rows_pick_the_right_recipient_among_a_thousand(
    client: TestClient, workspace: Workspace
):
    leak = leaked_rows(client, workspace)
    config = load_config(workspace.config_path)
    keyring = Keyring.from_config(config)
    recipients = [f"org:partner{i:04d}" for i in range(999)] + ["org:surgibot"]
    random.Random(1).shuffle(recipients)
    domains, values = source_reader(config, build_connectors(config))
    report = trace(
        leak,
        keyring=keyring,
        recipients=recipients,
        versions=[1],
        domains=domains,
        source_values=values,
    )
    assert [e.recipient for e in report.attributed] == ["org:surgibot"]


def test_rotation_changes_pseudonyms_and_old_extracts_stay_traceable(
    client: TestClient, workspace: Workspace, tmp_path: Path
):
    before = leaked_rows(client, workspace)
    code, out = run_cli(workspace, "keys", "rotate", who="admin")
    assert code == 0 and "version 2" in out
    with client_for(workspace) as fresh:
        after = leaked_rows(fresh, workspace)
    assert all(p.startswith("p2_") for p in after.column("patient_id").to_pylist())
    for table, version in ((before, 1), (after, 2)):
        code, out = run_cli(workspace, "trace", str(write_csv(table, tmp_path / f"v{version}.csv")))
        assert code == 0
        assert report_of(out)["attributed"][0]["key_version"] == version


def test_trace_endpoint_is_for_officers_only(client: TestClient, workspace: Workspace):
    sink = io.BytesIO()
    pacsv.write_csv(leaked_rows(client, workspace), sink)
    response = client.post(
        "/v1/trace",
        content=sink.getvalue(),
        headers={**bearer(workspace, "victor"), "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["verdict"] == "attributed to org:surgibot"
    refused = client.post(
        "/v1/trace",
        content=sink.getvalue(),
        headers={**bearer(workspace, "mei"), "Content-Type": "text/csv"},
    )
    assert refused.status_code == 403
    unreadable = client.post(
        "/v1/trace",
        content=b"\x00\x01garbage",
        headers={**bearer(workspace, "victor"), "Content-Type": "application/vnd.apache.parquet"},
    )
    assert unreadable.status_code == 400
