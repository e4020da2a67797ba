"""The coarse casbin check, as a decision table."""

from __future__ import annotations

import pytest

from policies.casbin_engine import CasbinEngine, PolicyLine

LINES = [
    PolicyLine("p", ("org:surgibot", "imaging", "patients", "read", "allow")),
    PolicyLine("p", ("user:lin", "imaging", "*", "read", "allow")),
    PolicyLine("p", ("user:erin", "imaging", "studies", "read", "allow")),
    PolicyLine("p", ("user:mole", "imaging", "patients", "read", "allow")),
    PolicyLine("p", ("org:surgibot", "imaging", "*", "read", "deny")),
] + [PolicyLine("p", (f"user:u{i}", "imaging", "patients", "read", "allow")) for i in range(500)]


@pytest.mark.parametrize(
    ("subjects", "module", "dataset", "expected"),
    [
        (["user:lin"], "imaging", "patients", True),
        (["user:lin"], "imaging", "studies", True),
        (["user:lin"], "crm", "customers", False),
        (["user:erin"], "imaging", "studies", True),
        (["user:erin"], "imaging", "patients", False),
        (["user:u42"], "imaging", "patients", True),
        (["user:nobody"], "imaging", "patients", False),
        # deny on the org overrides its own allow and a member's allow
        (["user:mei", "org:surgibot"], "imaging", "patients", False),
        (["user:mole", "org:surgibot"], "imaging", "patients", False),
        ([], "imaging", "patients", False),
    ],
)
def test_decision_table(subjects: list[str], module: str, dataset: str, expected: bool):
    engine = CasbinEngine(LINES)
    allowed, matched = engine.check(
        subjects=subjects, module=module, dataset=dataset, action="read"
    )
    assert allowed is expected
    if expected:
        assert matched


def test_other_actions_are_denied():
    engine = CasbinEngine(LINES)
    assert not engine.check(
        subjects=["user:lin"], module="imaging", dataset="patients", action="write"
    )[0]
