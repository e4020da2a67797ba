"""The OPA engine, against an OPA-compatible stub server.

No OPA binary can be installed here, so ``opa_stub_server.OpaStub`` serves OPA's REST API
over real HTTP and evaluates with the embedded RegoEngine. These tests therefore check
the client side (opa-python-client calls, the wire format, timeouts, error mapping) and
that both engines return the same decisions for the same documents; they do not check
OPA's own Rego semantics.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from policies.errors import PolicyCompileError, PolicyUnavailable
from policies.opa import POLICY_ID_PREFIX, OpaEngine
from policies.rego import RegoEngine
from tests.policies.decision_table import (
    TABLE,
    Row,
    check,
    concurrent_mismatches,
    request_document,
)
from tests.policies.opa_stub_server import OpaStub

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"
MODULE_IDS = [
    f"{POLICY_ID_PREFIX}{name}" for name in ("access.rego", "separation.rego", "window.rego")
]


@pytest.fixture(scope="module")
def stub() -> Iterator[OpaStub]:
    with OpaStub() as server:
        yield server


@pytest.fixture(scope="module")
def opa(stub: OpaStub) -> Iterator[OpaEngine]:
    with OpaEngine(stub.url, timeout_s=2.0) as engine:
        engine.push_policies(POLICY_DIR)
        yield engine


@pytest.fixture(scope="module")
def rego() -> Iterator[RegoEngine]:
    with RegoEngine.from_directory(POLICY_DIR) as engine:
        yield engine


@pytest.fixture
def fresh_stub() -> Iterator[OpaStub]:
    with OpaStub() as server:
        yield server


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("expected", TABLE)
def test_decision_table_parity(opa: OpaEngine, rego: RegoEngine, expected: Row) -> None:
    decision = opa.evaluate(expected.document)
    check(decision, expected)
    assert decision == rego.evaluate(expected.document)


@pytest.mark.usefixtures("opa")
def test_push_puts_every_module_and_no_tests(stub: OpaStub) -> None:
    listed = [policy["id"] for policy in stub.list_policies()]
    assert listed == MODULE_IDS
    puts = [path for method, path in stub.requests if method == "PUT"]
    assert sorted(set(puts)) == [f"/v1/policies/{i}" for i in MODULE_IDS]


def test_versions_agree_between_engines(opa: OpaEngine, rego: RegoEngine) -> None:
    assert opa.version == rego.version
    assert opa.fetch_version() == rego.version


def test_push_retries_modules_refused_for_missing_dependencies(fresh_stub: OpaStub) -> None:
    fresh_stub.requires = {
        f"{POLICY_ID_PREFIX}access.rego": {
            f"{POLICY_ID_PREFIX}separation.rego",
            f"{POLICY_ID_PREFIX}window.rego",
        }
    }
    with OpaEngine(fresh_stub.url, timeout_s=2.0) as engine:
        engine.push_policies(POLICY_DIR)
        assert engine.evaluate(request_document())["allow"] is True
    puts = [path for method, path in fresh_stub.requests if method == "PUT"]
    assert puts.count(f"/v1/policies/{POLICY_ID_PREFIX}access.rego") == 2


def test_compile_error_from_the_server_names_file_and_line(
    fresh_stub: OpaStub, tmp_path: Path
) -> None:
    directory = tmp_path / "p"
    directory.mkdir()
    (directory / "broken.rego").write_text(
        "package kiteline.access\n\nimport rego.v1\n\ndecision if {\n\tinput.a ==\n}\n"
    )
    with OpaEngine(fresh_stub.url) as engine, pytest.raises(PolicyCompileError) as caught:
        engine.push_policies(directory)
    assert caught.value.file == str(directory / "broken.rego")
    assert caught.value.line == 6


def test_a_down_server_is_unavailable() -> None:
    with OpaEngine(f"http://127.0.0.1:{closed_port()}", timeout_s=0.5) as engine:
        started = time.monotonic()
        with pytest.raises(PolicyUnavailable, match="unreachable"):
            engine.evaluate(request_document())
        assert time.monotonic() - started < 2
        with pytest.raises(PolicyUnavailable):
            engine.push_policies(POLICY_DIR)
        with pytest.raises(PolicyUnavailable):
            engine.fetch_version()


@pytest.mark.usefixtures("opa")
def test_a_slow_server_is_unavailable_within_the_timeout(stub: OpaStub) -> None:
    engine = OpaEngine(stub.url, timeout_s=0.1)
    stub.delay_s = 0.5
    try:
        started = time.monotonic()
        with pytest.raises(PolicyUnavailable, match="within 0.1 s"):
            engine.evaluate(request_document())
        assert time.monotonic() - started < 0.4
    finally:
        stub.delay_s = 0.0
        engine.close()


def test_an_error_status_is_unavailable(opa: OpaEngine, stub: OpaStub) -> None:
    stub.fail_status = 500
    try:
        with pytest.raises(PolicyUnavailable, match="answered 500"):
            opa.evaluate(request_document())
    finally:
        stub.fail_status = None


def test_a_missing_result_is_unavailable(opa: OpaEngine, stub: OpaStub) -> None:
    stub.drop_result = True
    try:
        with pytest.raises(PolicyUnavailable, match="no kiteline decision"):
            opa.evaluate(request_document())
    finally:
        stub.drop_result = False


def test_a_server_without_the_policies_is_unavailable(fresh_stub: OpaStub) -> None:
    with OpaEngine(fresh_stub.url) as engine:
        with pytest.raises(PolicyUnavailable, match="no kiteline decision"):
            engine.evaluate(request_document())
        with pytest.raises(PolicyUnavailable, match="no kiteline policies"):
            engine.fetch_version()


def test_the_bearer_token_is_sent() -> None:
    with OpaStub(token="s3cret") as server:
        # Generous: the stub compiles its engine on the first query.
        with OpaEngine(server.url, token="s3cret", timeout_s=10) as engine:
            engine.push_policies(POLICY_DIR)
            assert engine.evaluate(request_document())["allow"] is True
        with OpaEngine(server.url) as anonymous:
            with pytest.raises(PolicyUnavailable, match="401"):
                anonymous.evaluate(request_document())
            with pytest.raises(PolicyUnavailable, match="refused"):
                anonymous.push_policies(POLICY_DIR)


def test_input_that_is_not_json_is_unavailable(opa: OpaEngine) -> None:
    with pytest.raises(PolicyUnavailable):
        opa.evaluate({"request": {"now_ns": float("inf")}})


def test_not_an_http_url_is_refused() -> None:
    with pytest.raises(ValueError):
        OpaEngine("opa:8181")


def test_concurrent_evaluations_agree(opa: OpaEngine, rego: RegoEngine) -> None:
    documents = [row.values[0].document for row in TABLE]
    expected = [rego.evaluate(d) for d in documents]
    assert concurrent_mismatches(opa.evaluate, documents, expected, threads=4) == []
