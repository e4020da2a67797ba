"""OpenTelemetry traces: a real `kiteline serve` exports a governed read's spans over
OTLP/HTTP to a loopback receiver, parented under the caller's traceparent, and nothing
secret (token, filter literal, row value) is anywhere in what it sends."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
import yaml

from gateway.config import ConfigError, TracingSection
from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from gateway.observability import tracing
from tests.conftest import bearer, client_for
from tests.otlp_receiver import otlp_receiver
from tests.serving import serve_gateway

ARROW = "application/vnd.apache.arrow.stream"
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


def traced_read(url: str, token: str, query: dict, accept: str) -> tuple[httpx.Response, str]:
    """A governed read sent from inside a caller's trace: the answer and the caller's
    traceparent (a fresh trace id and span id)."""
    traceparent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    answer = httpx.post(
        f"{url}/v1/datasets/patients/query",
        json=query,
        headers={"Authorization": f"Bearer {token}", "Accept": accept, "traceparent": traceparent},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer, traceparent


def read_trace(received, traceparent: str) -> list:
    """The spans of the trace ``traceparent`` started, once all of them have arrived."""
    trace_id = traceparent.split("-")[1]

    def ours(found: list) -> list:
        return [span for _, span in found if span.trace_id.hex() == trace_id]

    spans = received.wait_for(
        lambda found: {READ_ROUTE, *CHILDREN} <= {s.name for s in ours(found)}
    )
    return ours(spans)


def check_trace(trace: list, traceparent: str, answer: httpx.Response) -> None:
    (request,) = [span for span in trace if span.name == READ_ROUTE]
    # Every other span of the trace is a step of this request, inside it.
    for span in trace:
        if span is not request:
            assert span.parent_span_id == request.span_id, span.name
            assert request.start_time_unix_nano <= span.start_time_unix_nano
            assert span.end_time_unix_nano <= request.end_time_unix_nano
    spans = {span.name: span for span in trace}
    assert request.parent_span_id.hex() == traceparent.split("-")[2]  # the caller's span
    assert request.kind == request.SPAN_KIND_SERVER
    seen = attributes(request)
    assert seen["http.route"] == "/v1/datasets/{name}/query"
    assert seen["http.response.status_code"] == 200
    assert seen["kiteline.request_id"] == answer.headers["x-request-id"]
    decision = attributes(spans["kiteline.decision"])
    assert decision["kiteline.decision.result"] == "allow"
    assert decision["kiteline.decision.rule"]
    assert attributes(spans["kiteline.store.scan"])["kiteline.store.kind"] == "local"
    actions = attributes(spans["kiteline.audit.append"])["kiteline.audit.actions"]
    assert actions in ("data.query,data.read", "data.query", "data.read")
    delivery = attributes(spans["kiteline.delivery"])
    assert delivery["kiteline.delivery.bytes"] == len(answer.content)
    assert delivery["kiteline.delivery.complete"] is True


@pytest.mark.slow
def test_a_governed_read_is_exported_as_one_trace_without_secrets(
    workspace: Workspace, tmp_path: Path
):
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
            small, small_parent = traced_read(url, token, query, "application/json")
            # A large answer is streamed, its batches read and sent from other threads.
            large, large_parent = traced_read(url, token, {**query, "limit": 5000}, ARROW)
            bad = httpx.get(f"{url}/v1/me", headers={"Authorization": f"Bearer {token}x"})
            assert bad.status_code == 401
            small_trace = read_trace(received, small_parent)
            large_trace = read_trace(received, large_parent)
        bodies = b"".join(received.bodies)

    check_trace(small_trace, small_parent, small)
    rows = small.json()["rows"]
    (scan,) = [span for span in small_trace if span.name == "kiteline.store.scan"]
    assert attributes(scan)["kiteline.store.rows"] >= len(rows)
    check_trace(large_trace, large_parent, large)
    assert pa.ipc.open_stream(large.content).read_all().num_rows == 5000
    resource = received.spans()[0][0]
    assert {"service.name": "kiteline-test"}.items() <= attributes(resource).items()
    # Nothing secret in any byte the gateway exported: not the token (nor the wrong one
    # sent), not its secret part (kl_<key id>_<secret>, and the secret may itself hold
    # "_"), not the filter's literal, not a value of the answer.
    for secret in [token, token.split("_", 2)[2], literal, *strings_of(rows)]:
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


def test_sampling_keeps_a_callers_sampled_trace_and_drops_the_others(workspace: Workspace):
    query = {"columns": ["patient_id"], "limit": 5, "purpose": SURGICAL_PURPOSE}
    kept = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    with otlp_receiver() as (endpoint, received):
        with_tracing(workspace, endpoint)
        config = yaml.safe_load(workspace.config_path.read_text())
        config["tracing"]["sample_ratio"] = 0.0
        workspace.config_path.write_text(yaml.safe_dump(config, allow_unicode=True))
        with client_for(workspace) as client:
            headers = bearer(workspace, "mei")
            for extra in ({}, {"traceparent": kept}, {"traceparent": kept[:-2] + "00"}):
                answer = client.post(
                    "/v1/datasets/patients/query", json=query, headers={**headers, **extra}
                )
                assert answer.status_code == 200, answer.text
        # The app's shutdown flushed what it kept.
        traces = {span.trace_id.hex() for _, span in received.spans()}
    assert traces == {kept.split("-")[1]}
