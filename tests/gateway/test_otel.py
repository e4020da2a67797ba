"""OpenTelemetry traces: a real `kiteline serve` exports a governed read's spans over
OTLP/HTTP to a loopback receiver, parented under the caller's traceparent, and nothing
secret (token, filter literal, row value) is anywhere in what it sends."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.config import ConfigError, TracingSection
from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from gateway.observability import tracing
from tests.otlp_receiver import otlp_receiver
from tests.serving import serve_gateway

READ_ROUTE = "POST /v1/datasets/{name}/query"
CHILDREN = {
    "kiteline.decision",
    "kiteline.store.scan",
    "kiteline.transform",
    "kiteline.audit.append",
    "kiteline.delivery",
}


def with_tracing(workspace: Workspace, endpoint: str) -> None:
    config = yaml.safe_load(workspace.config_path.read_text())
    config["tracing"] = {"enabled": True, "endpoint": endpoint, "service_name": "kiteline-test"}
    workspace.config_path.write_text(yaml.safe_dump(config, allow_unicode=True))


def attributes(span) -> dict:
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}


def strings_of(rows: list[dict]) -> set[str]:
    """The answer's cell values long enough not to turn up in protobuf bytes by chance."""
    return {str(v) for row in rows for v in row.values() if v is not None and len(str(v)) >= 6}


@pytest.mark.slow
def test_a_governed_read_is_exported_as_one_trace_without_secrets(
    workspace: Workspace, tmp_path: Path
):
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    literal = f"zz-literal-{secrets.token_hex(6)}"
    token = workspace.tokens["mei"]
    query = {
        "columns": ["patient_id", "birth_date", "diagnosis"],
        "where": [{"column": "diagnosis", "op": "!=", "value": literal}],
        "limit": 5,
        "purpose": SURGICAL_PURPOSE,
    }
    with otlp_receiver() as (endpoint, received):
        with_tracing(workspace, endpoint)
        # Spans leave in batches; a short delay keeps the test quick.
        env = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
        with serve_gateway(workspace.config_path, tmp_path / "serve.log", env=env) as url:
            answer = httpx.post(
                f"{url}/v1/datasets/patients/query",
                json=query,
                headers={
                    "Authorization": f"Bearer {token}",
                    "traceparent": f"00-{trace_id}-{caller_span}-01",
                },
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            rows = answer.json()["rows"]
            assert rows
            spans = received.wait_for(
                lambda found: (
                    any(s.name == READ_ROUTE for _, s in found)
                    and CHILDREN <= {s.name for _, s in found if s.trace_id.hex() == trace_id}
                )
            )
        bodies = b"".join(received.bodies)

    ours = [span for _, span in spans if span.trace_id.hex() == trace_id]
    (request,) = [s for s in ours if s.name == READ_ROUTE]
    assert request.parent_span_id.hex() == caller_span  # the caller's traceparent honoured
    assert request.kind == request.SPAN_KIND_SERVER
    seen = attributes(request)
    assert seen["http.route"] == "/v1/datasets/{name}/query"
    assert seen["http.response.status_code"] == 200
    assert seen["kiteline.request_id"] == answer.headers["x-request-id"]
    by_name = {s.name: s for s in ours}
    for name in CHILDREN:
        assert by_name[name].parent_span_id == request.span_id, name
    decision = attributes(by_name["kiteline.decision"])
    assert decision["kiteline.decision.result"] == "allow"
    assert decision["kiteline.decision.rule"]
    scan = attributes(by_name["kiteline.store.scan"])
    assert scan["kiteline.store.kind"] == "local"
    assert scan["kiteline.store.rows"] >= len(rows)
    assert attributes(by_name["kiteline.transform"])["kiteline.transform.rows_out"] >= len(rows)
    actions = attributes(by_name["kiteline.audit.append"])["kiteline.audit.actions"]
    assert actions == "data.query,data.read"
    assert attributes(by_name["kiteline.delivery"])["kiteline.delivery.bytes"] == len(
        answer.content
    )
    resource = spans[0][0]
    assert {"service.name": "kiteline-test"}.items() <= attributes(resource).items()
    # Nothing secret in any byte the gateway exported.
    for secret in [token, token.split("_")[-1], literal, *strings_of(rows)]:
        assert secret.encode() not in bodies, secret


def test_tracing_without_the_extra_refuses_to_start(monkeypatch: pytest.MonkeyPatch):
    # As if the otel extra were not installed: importing it fails.
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(ConfigError, match="otel extra"):
        tracing.start(TracingSection(enabled=True))
    assert tracing.start(TracingSection()) is None  # off: nothing is imported or needed


def test_spans_cost_nothing_while_tracing_is_off():
    assert tracing.tracer() is None
    with tracing.span("kiteline.decision", dataset="x") as traced:
        traced.set(anything="ignored")
    batches = iter([1, 2])
    assert tracing.scanned(object(), batches) is batches
