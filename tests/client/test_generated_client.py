"""The OpenAPI document generates a working client: openapi-python-client builds one,
and the partner story runs through it against a real `kiteline serve`."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from kiteline_client import Receipt, verify_receipt

from gateway.demo.workspace import MARKET_PURPOSE, SURGICAL_PURPOSE, Workspace
from tests.client.conftest import Server

pytestmark = pytest.mark.slow

CONFIG = "project_name_override: kiteline-openapi\npackage_name_override: kiteline_openapi\n"


def generate(spec: dict, folder: Path) -> None:
    (folder / "openapi.json").write_text(json.dumps(spec))
    (folder / "config.yaml").write_text(CONFIG)
    generator = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [
            str(generator), "generate", "--path", "openapi.json", "--config", "config.yaml",
            "--meta", "none", "--output-path", "kiteline_openapi",
        ],
        cwd=folder, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # Only the officers' leak-trace upload (raw CSV/Parquet/NDJSON bodies) is skipped.
    output = (done.stdout + done.stderr).splitlines()
    skipped = [line for line in output if "will not be generated" in line]
    assert skipped == [
        "WARNING parsing POST /v1/trace within officers. Endpoint will not be generated."
    ]


def test_a_generated_client_runs_the_partner_story(
    served: Server, workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    spec = httpx.get(f"{served.url}/openapi.json").json()
    generate(spec, tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    api = importlib.import_module("kiteline_openapi")
    models = importlib.import_module("kiteline_openapi.models")

    mei = api.AuthenticatedClient(base_url=served.url, token=workspace.tokens["mei"])
    anonymous = api.Client(base_url=served.url)
    sam = api.AuthenticatedClient(base_url=served.url, token=workspace.tokens["sam"])
    try:
        partner_story(models, mei, anonymous, sam)
    finally:
        for client in (mei, anonymous, sam):
            client.get_httpx_client().close()


def partner_story(models, mei, anonymous, sam) -> None:
    me = importlib.import_module("kiteline_openapi.api.me.me")
    datasets = importlib.import_module("kiteline_openapi.api.datasets.list_datasets")
    query = importlib.import_module("kiteline_openapi.api.datasets.query")
    public_key = importlib.import_module("kiteline_openapi.api.audit.public_key")
    proof = importlib.import_module("kiteline_openapi.api.audit.inclusion_proof")
    request_grant = importlib.import_module("kiteline_openapi.api.grants.request_grant")
    vkey = public_key.sync(client=anonymous).vkey

    assert me.sync(client=mei).name == "mei"
    names = [d.name for d in datasets.sync(client=mei).datasets]
    assert "patients" in names

    body = models.QueryRequest(columns=["diagnosis"], limit=5, purpose=SURGICAL_PURPOSE)
    first = query.sync_detailed("patients", client=mei, body=body)
    assert first.status_code == 200
    page = first.parsed
    assert isinstance(page, models.QueryPage) and len(page.rows) == 5
    assert page.next_cursor
    body.cursor = page.next_cursor
    second = query.sync("patients", client=mei, body=body)
    assert isinstance(second, models.QueryPage) and len(second.rows) == 5

    seq = int(first.headers["x-kiteline-audit-seq"])
    receipt = proof.sync(seq, client=mei)
    checkpoint = verify_receipt(Receipt.from_json(receipt.to_dict()), vkey)
    assert checkpoint.tree_size >= seq

    refused = query.sync("patients", client=sam, body=models.QueryRequest(purpose=MARKET_PURPOSE))
    assert isinstance(refused, models.Problem)
    assert refused.status == 403 and refused.type_ == "urn:kiteline:problem:access-denied"

    grant_body = models.GrantRequestBody.from_dict(
        {"dataset": "annotations", "profile": "anonymized", "days": 30, "purpose": MARKET_PURPOSE}
    )
    created = request_grant.sync_detailed(client=sam, body=grant_body)
    assert created.status_code == 201
    assert isinstance(created.parsed, models.Grant) and created.parsed.status == "requested"
