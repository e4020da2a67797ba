"""Property-based fuzzing of the whole API from its own OpenAPI document, as each role.

Every generated request (valid and invalid) is sent with each role's token: no answer
may be a server error, or stray from the documented response schemas and media types.
Cases are both valid and invalid (schemathesis' positive and negative modes); their
number is bounded (``MAX_EXAMPLES`` per operation and mode, each sent once per role and
once with no token) to keep the run to a few minutes on two cores.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from gateway.demo.workspace import Workspace
from tests.conftest import client_for, copy_workspace
from tests.security.inventory import ROLES

MAX_EXAMPLES = 15
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
SENT: list[int] = []


@pytest.fixture(scope="module")
def fuzzed(
    demo_template: Workspace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Workspace]]:
    workspace = copy_workspace(demo_template, tmp_path_factory.mktemp("fuzz") / "ws")
    text = workspace.config_path.read_text(encoding="utf-8")
    # The fuzzer sends thousands of requests from one address as a few principals.
    unlimited = "gateway:\n  rate_limits: {per_ip: null, per_principal: null}\n"
    workspace.config_path.write_text(text.replace("gateway:\n", unlimited, 1), "utf-8")
    with client_for(workspace) as client:
        yield client, workspace
    # Printed in the test report: the size of the run.
    print(f"\nschemathesis: {len(SENT)} requests sent")  # noqa: T201


@pytest.fixture(scope="module")
def api(fuzzed: tuple[TestClient, Workspace]) -> schemathesis.schemas.BaseSchema:
    client, _ = fuzzed
    return schemathesis.openapi.from_asgi("/openapi.json", client.app)


def operations(api: schemathesis.schemas.BaseSchema) -> list[object]:
    return [result.ok() for result in api.get_all_operations()]


# schemathesis' lazy pytest fixture loader does not run under pytest 9 (it sets a node
# attribute that pytest no longer has); its generation API is driven directly instead,
# one Hypothesis run per operation, each failure reported with its operation.
@pytest.mark.slow
def test_no_server_error_and_no_schema_violation_for_any_role(
    api: schemathesis.schemas.BaseSchema, fuzzed: tuple[TestClient, Workspace]
):
    _, workspace = fuzzed
    tokens = [{"Authorization": f"Bearer {workspace.tokens[who]}"} for who in ROLES] + [{}]
    failures: list[str] = []
    for operation, mode in itertools.product(operations(api), GenerationMode):

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy(generation_mode=mode))  # type: ignore[attr-defined]
        def run(case: schemathesis.Case) -> None:
            for headers in tokens:
                case.call_and_validate(headers=headers, checks=CHECKS)
                SENT.append(1)

        try:
            run()
        except Unsatisfiable:
            pass  # no parameters or body to make invalid: nothing negative to send
        except Exception as exc:
            failures.append(f"{operation.label} ({mode}): {exc}")  # type: ignore[attr-defined]
    assert not failures, "\n\n".join(failures)
