"""Parity: the house rules in Python answer exactly what the packaged Rego answers.

Rego is the source of truth. Every document here goes to both; where the Python rules
answer (they decline what they do not model), the two decision documents must be equal,
reasons and obligations included.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.access.decisions import Decider
from gateway.access.grants import add_grant
from gateway.access.principals import Caller, authenticate
from gateway.demo.workspace import Workspace
from gateway.state.database import create_state_engine
from policies.bundle import with_utc_offsets
from policies.fast_path import FastPath, packaged_version
from policies.rego import RegoEngine
from tests.conftest import copy_workspace
from tests.policies.decision_table import (
    NEW_YORK_HOURS,
    NY_SUMMER_0830,
    NY_SUMMER_0930,
    OFFICE_HOURS,
    PROFILE_ORDER,
    TABLE,
    TUE_0759_SHANGHAI,
    TUE_0800_SHANGHAI,
    TUE_1000_SHANGHAI,
    Row,
    grant,
    request_document,
)

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"
# Rows whose documents the Python rules do not model, so Rego answers them.
REGO_ONLY_ROWS = {"empty-document", "window-rfc3339", "window-no-time"}


@pytest.fixture(scope="module")
def engine() -> Iterator[RegoEngine]:
    with RegoEngine.from_directory(POLICY_DIR) as loaded:
        yield loaded


def same_answer(engine: RegoEngine, document: dict[str, Any]) -> bool:
    """Whether the Python rules answered; fails when they answer otherwise than Rego."""
    fast = FastPath.answer(document)
    if fast is None:
        return False
    assert fast == engine.evaluate(document), document
    return True


def test_the_packaged_policy_is_the_one_restated(engine: RegoEngine) -> None:
    assert engine.version == packaged_version()
    assert FastPath(engine).enabled


@pytest.mark.parametrize("row", TABLE)
def test_every_row_of_the_decision_table(engine: RegoEngine, row: Row, request: Any) -> None:
    answered = same_answer(engine, row.document)
    assert answered is (request.node.callspec.id not in REGO_ONLY_ROWS)


ZONES = ["UTC", "Asia/Shanghai", "America/New_York", "Europe/Berlin", "Mars/Olympus", None]
WINDOW = st.fixed_dictionaries(
    {},
    optional={
        "days": st.lists(st.sampled_from(["mon", "tue", "sat", "sun", "Mon"]), max_size=3),
        "start": st.sampled_from(["00:00", "08:00", "22:00", "24:00", "8:00", "ab:cd", "09:60"]),
        "end": st.sampled_from(["00:00", "06:00", "20:00", "24:00", "2400"]),
        "timezone": st.sampled_from(ZONES),
    },
)
GRANTS = st.lists(
    st.builds(
        grant,
        id=st.integers(1, 9),
        profile=st.sampled_from([*PROFILE_ORDER, "secret"]),
        purpose=st.sampled_from([None, "", "surgical robot training", "marketing"]),
        approvals=st.integers(0, 3),
        dataset=st.sampled_from([None, "patients", "scans"]),
        module=st.sampled_from(["imaging", "imaging", "crm"]),
        window=st.one_of(st.none(), st.sampled_from([OFFICE_HOURS, NEW_YORK_HOURS]), WINDOW),
        row_cap=st.sampled_from([None, 10, 10000]),
        row_filter=st.sampled_from([None, [], [{"column": "city", "op": "=", "value": "北京"}]]),
    ),
    max_size=4,
)
INSTANTS = [TUE_1000_SHANGHAI, TUE_0759_SHANGHAI, TUE_0800_SHANGHAI, NY_SUMMER_0830, NY_SUMMER_0930]


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(["employee", "service", "alumni", "partner", "officer", "admin", "bot"]),
    status=st.sampled_from(["active", "active", "departed", "suspended", "on leave"]),
    org=st.sampled_from([("surgibot", "active"), ("surgibot", "suspended"), (None, None)]),
    grants=GRANTS,
    purpose=st.sampled_from([None, "", "surgical robot training", "marketing"]),
    requested=st.sampled_from([None, *PROFILE_ORDER, "bogus"]),
    now_ns=st.sampled_from(INSTANTS),
    held=st.lists(st.sampled_from(["imaging", "crm", "labels", "genomics"]), max_size=4),
    separation=st.sampled_from(
        [
            {"max_modules_per_principal": 3, "exclusive": [["imaging", "crm"]]},
            {"max_modules_per_principal": None, "exclusive": []},
            {"max_modules_per_principal": 1, "exclusive": [["labels", "crm", "genomics"]]},
            {},
        ]
    ),
    action=st.sampled_from(["read", "read", "write"]),
)
def test_generated_documents(
    engine: RegoEngine,
    kind: str,
    status: str,
    org: tuple[str | None, str | None],
    grants: list[dict[str, Any]],
    purpose: str | None,
    requested: str | None,
    now_ns: int,
    held: list[str],
    separation: dict[str, Any],
    action: str,
) -> None:
    document = request_document(
        principal={"kind": kind, "status": status, "org": org[0], "org_status": org[1]},
        request={"purpose": purpose, "profile": requested, "now_ns": now_ns},
        grants=grants,
        held_modules=held,
        separation=separation,
        action=action,
    )
    same_answer(engine, document)


def test_generated_documents_are_mostly_answered_in_python(engine: RegoEngine) -> None:
    # The restatement declines only what it does not model; the documents the gateway
    # builds, like these, it answers.
    documents = [
        request_document(
            principal={"kind": kind},
            request={"profile": profile, "now_ns": now_ns},
            grants=[grant(window=window, profile=granted)],
        )
        for kind, profile, now_ns, window, granted in itertools.product(
            ["employee", "partner", "service"],
            [None, "raw", "anonymized"],
            INSTANTS,
            [None, OFFICE_HOURS, NEW_YORK_HOURS],
            ["raw", "anonymized"],
        )
    ]
    assert all(same_answer(engine, d) for d in documents)


# --- the demo's decision table ----------------------------------------------------------

# Windows added to the demo's grants: office hours, overnight, a weekend, from midnight,
# a zone with daylight saving and one without a known offset.
DEMO_WINDOWS = [
    OFFICE_HOURS,
    {"start": "22:00", "end": "06:00", "timezone": "UTC"},
    {"days": ["sat", "sun"], "timezone": "Europe/Berlin"},
    {"start": "00:00", "end": "01:00", "timezone": "Asia/Tokyo"},
    NEW_YORK_HOURS,
    {"days": ["mon"], "timezone": "Nowhere/Atlantis"},
]
DEMO_INSTANTS = [
    datetime(2026, 11, 24, 2, 0, tzinfo=UTC),  # Tuesday 10:00 in Shanghai
    datetime(2026, 11, 23, 23, 59, tzinfo=UTC),  # Monday 23:59 UTC, Tuesday 07:59 Shanghai
    datetime(2026, 11, 28, 15, 0, tzinfo=UTC),  # Saturday afternoon
    datetime(2026, 11, 24, 15, 30, tzinfo=UTC),  # Wednesday 00:30 in Tokyo
    datetime(2026, 6, 16, 13, 30, tzinfo=UTC),  # Tuesday 09:30 in New York (EDT)
    datetime(2026, 3, 8, 6, 59, tzinfo=UTC),  # across New York's switch to EDT
]


@pytest.fixture(scope="module")
def demo(demo_template: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    workspace = copy_workspace(demo_template, tmp_path_factory.mktemp("parity") / "ws")
    engine = create_state_engine(workspace.config.state_url)
    subjects = [("principal", "erin"), ("principal", "lin"), ("org", "surgibot")]
    for window, (kind, name) in zip(DEMO_WINDOWS, itertools.cycle(subjects), strict=False):
        add_grant(
            engine,
            workspace.config,
            subject_type=kind,
            subject=name,
            module="imaging",
            profile="raw",
            purpose="surgical robot training" if kind == "org" else None,
            approvals=2,
            days=30,
            created_by="test",
            window=window,
        )
    engine.dispose()
    return workspace


def test_the_whole_demo_decision_table(engine: RegoEngine, demo: Workspace) -> None:
    """Every demo principal x dataset x purpose x profile x instant: equal documents."""
    state = create_state_engine(demo.config.state_url)
    decider = Decider(state, demo.config, engine)
    purposes = [None, "", "surgical robot training", "imaging model maintenance", "other"]
    at_now = datetime.now(UTC)
    count = 0
    for name, token in sorted(demo.tokens.items()):
        caller = authenticate(state, token)
        assert isinstance(caller, Caller)
        for dataset, purpose, profile, at in itertools.product(
            sorted(demo.config.datasets),
            purposes,
            [None, *PROFILE_ORDER],
            [at_now, *DEMO_INSTANTS],
        ):
            document = decider.explain(
                caller=caller, dataset=dataset, at=at, purpose=purpose, profile=profile
            ).input
            assert same_answer(engine, document), (name, dataset, purpose, profile, at)
            count += 1
    state.dispose()
    assert count == len(demo.tokens) * len(demo.config.datasets) * len(purposes) * 5 * 7


def test_a_policy_other_than_the_packaged_one_is_decided_by_rego(tmp_path: Path) -> None:
    for source in POLICY_DIR.glob("*.rego"):
        text = source.read_text(encoding="utf-8")
        if source.name == "access.rego":
            text = text.replace("raw_min_approvals := 2", "raw_min_approvals := 3")
        (tmp_path / source.name).write_text(text, encoding="utf-8")
    document = request_document(
        principal={"name": "li", "kind": "employee", "org": None, "org_status": None},
        grants=[grant(profile="raw", approvals=2)],
    )
    with RegoEngine.from_directory(tmp_path) as changed:
        fast = FastPath(changed)
        assert not fast.enabled
        decision = fast.evaluate(document)
    assert decision["obligations"]["profile"] == "pseudonymized"
    assert FastPath.answer(with_utc_offsets(document))["obligations"]["profile"] == "raw"  # type: ignore[index]
