"""casbin deny lines derived from the state: each rule, and deny-wins in the decider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.access.decisions import Decider
from gateway.access.grants import GrantIndex, GrantRecord
from gateway.access.policy_lines import Standing, deny, deny_lines
from gateway.access.principals import add_principal, caller_by_name, set_status
from gateway.config import Separation
from gateway.demo.workspace import MARKET_PURPOSE, SURGICAL_PURPOSE, Workspace
from gateway.state.database import create_state_engine
from tests.conftest import add_test_grant

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _grant(gid: int, subject: str, module: str, **extra: Any) -> GrantRecord:
    fields: dict[str, Any] = dict(
        id=gid,
        subject=subject,
        module=module,
        dataset=None,
        profile="anonymized",
        purpose=None,
        approvals=1,
        columns=None,
        row_filter=(),
        row_cap=None,
        expires_at=NOW + timedelta(days=1),
    )
    fields.update(extra)
    return GrantRecord(**fields)


RULES = Separation(max_modules_per_principal=2, exclusive=[("imaging", "crm")])


@pytest.mark.parametrize(
    ("principals", "orgs", "grants", "denied"),
    [
        (
            [Standing("mei", "partner", "active", "s")],
            {"s": "active"},
            [_grant(1, "org:s", "imaging")],
            set(),
        ),
        (
            [Standing("mei", "partner", "active", "s")],
            {"s": "suspended"},
            [_grant(1, "org:s", "imaging")],
            {"org:s"},
        ),
        (
            [Standing("zed", "employee", "suspended", None)],
            {},
            [_grant(1, "user:zed", "imaging")],
            {"user:zed"},
        ),
        ([Standing("victor", "officer", "active", None)], {}, [], {"user:victor"}),
        # The org alone holds an exclusive pair: one line for the org covers its members.
        (
            [Standing("mei", "partner", "active", "s")],
            {"s": "active"},
            [_grant(1, "org:s", "imaging"), _grant(2, "org:s", "crm")],
            {"org:s"},
        ),
        # The member's own grant and the org's together break the rule.
        (
            [Standing("mei", "partner", "active", "s")],
            {"s": "active"},
            [_grant(1, "org:s", "imaging"), _grant(2, "user:mei", "crm")],
            {"user:mei"},
        ),
        # Over the module limit.
        (
            [Standing("bob", "employee", "active", None)],
            {},
            [_grant(1, "user:bob", "a"), _grant(2, "user:bob", "b"), _grant(3, "user:bob", "c")],
            {"user:bob"},
        ),
        # Break-glass exceptions and expired grants do not count.
        (
            [Standing("bob", "employee", "active", None)],
            {},
            [
                _grant(1, "user:bob", "imaging"),
                _grant(2, "user:bob", "crm", break_glass=True),
                _grant(3, "user:bob", "x", expires_at=NOW),
            ],
            set(),
        ),
    ],
)
def test_deny_lines(principals, orgs, grants, denied):
    lines = deny_lines(
        principals=principals, orgs=orgs, index=GrantIndex(grants), separation=RULES, at=NOW
    )
    assert {line.values[0] for line in lines} == denied
    assert all(line == deny(line.values[0]) and reason for line, reason in lines.items())


class AllowEverything:
    """A Rego stand-in that allows every read under the first grant."""

    version = "allow-all"

    def evaluate(self, document: dict[str, Any]) -> dict[str, Any]:
        grants = document["grants"]
        return {
            "allow": bool(grants),
            "reasons": [],
            "obligations": {
                "profile": "anonymized",
                "grant_id": grants[0]["id"] if grants else None,
                "row_filters": [],
                "row_cap": None,
                "purpose_required": False,
                "purposes": [],
            },
        }


def test_a_deny_line_refuses_what_rego_and_an_allow_line_would_allow(workspace: Workspace):
    config = workspace.config
    engine = create_state_engine(config.state_url)
    try:
        decider = Decider(engine, config, AllowEverything())
        mei = caller_by_name(engine, "mei")
        assert mei is not None
        at = datetime.now(UTC)
        allowed = decider.decide(caller=mei, dataset="patients", at=at, purpose=SURGICAL_PURPOSE)
        assert allowed.allowed and allowed.matched == (
            "org:surgibot, imaging, patients, read, allow",
        )
        add_test_grant(
            engine,
            config,
            "surgibot",
            "aggregate",
            subject_type="org",
            dataset="customers",
            purpose=MARKET_PURPOSE,
            days=1,
        )
        mei = caller_by_name(engine, "mei")
        assert mei is not None
        refused = decider.decide(caller=mei, dataset="patients", at=at, purpose=SURGICAL_PURPOSE)
        assert not refused.allowed
        assert refused.matched == ("org:surgibot, *, *, read, deny",)
        assert refused.reasons[0].startswith("explicit deny (separation): organization 'surgibot'")
        add_principal(engine, name="kim", kind="employee")
        add_test_grant(engine, config, "kim", "pseudonymized", dataset="studies", days=1)
        set_status(engine, "kim", "suspended")
        kim = caller_by_name(engine, "kim")
        assert kim is not None
        refused = decider.decide(caller=kim, dataset="studies", at=at)
        assert refused.reasons == ("explicit deny: principal 'kim' is suspended",)
    finally:
        engine.dispose()
