"""The embedded Rego engine (regopy / rego-cpp) over the policies in ``policies/``."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.bundle import with_utc_offsets
from policies.errors import PolicyCompileError, PolicyUnavailable
from policies.rego import RegoEngine
from tests.policies.decision_table import (
    CEILING,
    OFFICE_HOURS,
    PROFILE_ORDER,
    TABLE,
    TUE_0759_SHANGHAI,
    TUE_1000_SHANGHAI,
    Row,
    check,
    concurrent_mismatches,
    grant,
    request_document,
)

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"

MINIMAL_DECISION = """package kiteline.access

import rego.v1

decision := {
\t"allow": false,
\t"reasons": ["nothing"],
\t"obligations": {
\t\t"profile": null, "grant_id": null, "row_filters": [], "row_cap": null,
\t\t"purpose_required": false, "purposes": [],
\t},
}
"""


@pytest.fixture(scope="module")
def engine() -> Iterator[RegoEngine]:
    with RegoEngine.from_directory(POLICY_DIR) as loaded:
        yield loaded


def write_policies(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


@pytest.mark.parametrize("expected", TABLE)
def test_decision_table(engine: RegoEngine, expected: Row) -> None:
    check(engine.evaluate(expected.document), expected)


def test_allowed_decision_carries_the_obligations(engine: RegoEngine) -> None:
    decision = engine.evaluate(request_document())
    assert decision == {
        "allow": True,
        "reasons": ["allowed under grant 3 with the 'anonymized' profile"],
        "obligations": {
            "profile": "anonymized",
            "grant_id": 3,
            "row_filters": [{"column": "city", "op": "=", "value": "Beijing"}],
            "row_cap": 10000,
            "purpose_required": True,
            "purposes": ["surgical robot training"],
        },
    }


def test_denied_decision_lists_every_reason_in_order(engine: RegoEngine) -> None:
    document = request_document(
        principal={"status": "departed", "org_status": "suspended"},
        request={"purpose": None},
        held_modules=["imaging", "crm"],
    )
    decision = engine.evaluate(document)
    assert decision["allow"] is False
    assert decision["reasons"] == sorted(decision["reasons"])
    assert len(decision["reasons"]) == 4


# --- the Rego unit tests ---------------------------------------------------------------


def test_every_policy_module_has_tests_beside_it() -> None:
    modules = [p for p in POLICY_DIR.glob("*.rego") if not p.name.endswith("_test.rego")]
    assert modules
    for module in modules:
        assert module.with_name(module.stem + "_test.rego").is_file(), module.name


def test_rego_unit_tests_all_pass(engine: RegoEngine) -> None:
    report = engine.run_tests()
    assert report.ok, report.failures()
    assert len(report.passed) >= 60
    assert report.failed == []
    packages = {name.rsplit(".", 1)[0] for name in report.passed}
    assert packages == {
        "data.kiteline.access_test",
        "data.kiteline.separation_test",
        "data.kiteline.window_test",
    }


def test_run_tests_reports_a_failing_test(tmp_path: Path) -> None:
    directory = write_policies(
        tmp_path / "p",
        {
            "access.rego": MINIMAL_DECISION,
            "access_test.rego": "package kiteline.access_test\n\nimport rego.v1\n\n"
            "import data.kiteline.access\n\n"
            "test_denies if not access.decision.allow\n\n"
            "test_wrongly_expects_allow if access.decision.allow\n\n"
            'test_errors if to_number("x") == 1\n',
        },
    )
    with RegoEngine.from_directory(directory, workers=1) as engine:
        report = engine.run_tests()
    assert report.passed == ["data.kiteline.access_test.test_denies"]
    assert report.failed == [
        "data.kiteline.access_test.test_wrongly_expects_allow",
        "data.kiteline.access_test.test_errors",
    ]
    assert not report.ok
    assert report.coverage is None


def test_run_tests_refuses_with_input_as_instead_of_crashing(tmp_path: Path) -> None:
    directory = write_policies(
        tmp_path / "p",
        {
            "access.rego": MINIMAL_DECISION,
            "access_test.rego": "package kiteline.access_test\n\nimport rego.v1\n\n"
            'test_mocked if { count(input.xs) == 1 with input as {"xs": [1]} }\n',
        },
    )
    with RegoEngine.from_directory(directory, workers=1) as engine:
        report = engine.run_tests()
    assert report.failed == ["data.kiteline.access_test.test_mocked"]
    assert "with input as" in report.failures()["data.kiteline.access_test.test_mocked"]


# --- loading -------------------------------------------------------------------------------


def test_compile_error_names_file_and_line(tmp_path: Path) -> None:
    broken = "package kiteline.access\n\nimport rego.v1\n\ndecision if {\n\tinput.a ==\n}\n"
    directory = write_policies(
        tmp_path / "p", {"access.rego": MINIMAL_DECISION, "broken.rego": broken}
    )
    with pytest.raises(PolicyCompileError) as caught:
        RegoEngine.from_directory(directory)
    assert caught.value.file == str(directory / "broken.rego")
    assert caught.value.line == 6
    assert caught.value.message
    assert f"{directory / 'broken.rego'}:6" in str(caught.value)


def test_compile_error_in_a_test_file_is_reported_by_run_tests(tmp_path: Path) -> None:
    directory = write_policies(
        tmp_path / "p",
        {"access.rego": MINIMAL_DECISION, "access_test.rego": "package t\n\ntest_x if {\n"},
    )
    with (
        RegoEngine.from_directory(directory, workers=1) as engine,
        pytest.raises(PolicyCompileError) as caught,
    ):
        engine.run_tests()
    assert caught.value.file.endswith("access_test.rego")


def test_a_policy_that_cannot_decide_is_refused_at_load(tmp_path: Path) -> None:
    # rego-cpp accepts an unknown function until it is called; the probes call it.
    calls_nothing = MINIMAL_DECISION.replace('"allow": false', '"allow": no_such_function(1)')
    directory = write_policies(tmp_path / "p", {"access.rego": calls_nothing})
    with pytest.raises(PolicyCompileError, match="probe"):
        RegoEngine.from_directory(directory)


def test_a_policy_with_the_wrong_shape_is_refused_at_load(tmp_path: Path) -> None:
    directory = write_policies(
        tmp_path / "p", {"access.rego": 'package kiteline.access\n\ndecision := {"allow": true}\n'}
    )
    with pytest.raises(PolicyCompileError, match="malformed decision"):
        RegoEngine.from_directory(directory)


def test_missing_directory_is_a_compile_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyCompileError):
        RegoEngine.from_directory(tmp_path / "absent")


def test_version_is_a_digest_of_the_modules_only(tmp_path: Path, engine: RegoEngine) -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", engine.version)
    directory = write_policies(
        tmp_path / "p",
        {
            "access.rego": MINIMAL_DECISION,
            "access_test.rego": "package kiteline.access_test\n\nimport rego.v1\n\n"
            "test_a if true\n",
        },
    )
    first = RegoEngine.from_directory(directory, workers=1)
    (directory / "access_test.rego").write_text(
        "package kiteline.access_test\n\nimport rego.v1\n\ntest_b if true\n", encoding="utf-8"
    )
    same = RegoEngine.from_directory(directory, workers=1)
    (directory / "access.rego").write_text(MINIMAL_DECISION + "\n# changed\n", encoding="utf-8")
    changed = RegoEngine.from_directory(directory, workers=1)
    assert first.version == same.version != changed.version
    for loaded in (first, same, changed):
        loaded.close()


# --- failing closed ------------------------------------------------------------------------


def test_evaluation_past_the_timeout_is_unavailable(tmp_path: Path) -> None:
    # 160,000 iterations: over a second in rego-cpp, well past a 0.2 s budget.
    slow = MINIMAL_DECISION.replace(
        '"allow": false',
        '"allow": count({x | some a in numbers.range(1, object.get(input, "spin", 1)); '
        'some b in numbers.range(1, object.get(input, "spin", 1)); x := (a * b) % 7}) < 0',
    )
    directory = write_policies(tmp_path / "p", {"access.rego": slow})
    with RegoEngine.from_directory(directory, timeout_s=0.2, workers=2) as engine:
        started = time.monotonic()
        with pytest.raises(PolicyUnavailable, match="longer than 0.2 s"):
            engine.evaluate({"spin": 400})
        assert time.monotonic() - started < 0.8
        # The other worker still answers while the first one grinds on.
        assert engine.evaluate({})["allow"] is False


def test_an_evaluation_error_is_unavailable(tmp_path: Path) -> None:
    # rego-cpp reports an unknown function only when it is called.
    fails_on_demand = (
        MINIMAL_DECISION.replace("decision := {", "decision := {", 1).replace(
            "\n}\n", "\n} if not input.boom\n"
        )
        + '\ndecision := {"allow": no_such_function(1)} if input.boom\n'
    )
    directory = write_policies(tmp_path / "p", {"access.rego": fails_on_demand})
    with RegoEngine.from_directory(directory, workers=1) as engine:
        assert engine.evaluate({})["allow"] is False
        with pytest.raises(PolicyUnavailable, match="no_such_function"):
            engine.evaluate({"boom": True})


def test_an_undefined_decision_is_unavailable(tmp_path: Path) -> None:
    sometimes = MINIMAL_DECISION.replace("\n}\n", "\n} if not input.silent\n")
    directory = write_policies(tmp_path / "p", {"access.rego": sometimes})
    with RegoEngine.from_directory(directory, workers=1) as engine:
        with pytest.raises(PolicyUnavailable, match="no decision"):
            engine.evaluate({"silent": True})


def test_utc_offsets_follow_daylight_saving() -> None:
    window = {"days": ["tue"], "start": "09:00", "end": "17:00", "timezone": "America/New_York"}
    winter = request_document(
        request={"now_ns": 1_768_573_800_000_000_000}, grants=[grant(window=window)]
    )
    summer = request_document(
        request={"now_ns": 1_781_616_600_000_000_000}, grants=[grant(window=window)]
    )
    assert with_utc_offsets(winter)["request"]["utc_offsets"] == {"America/New_York": -18000}
    assert with_utc_offsets(summer)["request"]["utc_offsets"] == {"America/New_York": -14400}
    assert "utc_offsets" not in winter["request"]  # the caller's document is left alone


def test_utc_offsets_keep_given_ones_and_skip_unknown_zones() -> None:
    windows = [
        grant(window=dict(OFFICE_HOURS, timezone="Asia/Shanghai")),
        grant(window=dict(OFFICE_HOURS, timezone="Mars/Olympus_Mons")),
        grant(window=dict(OFFICE_HOURS, timezone="Europe/Berlin")),
    ]
    document = request_document(
        request={
            "now_ns": None,
            "now": "2026-07-01T12:00:00+00:00",
            "utc_offsets": {"Asia/Shanghai": 1},
        },
        grants=windows,
    )
    assert with_utc_offsets(document)["request"]["utc_offsets"] == {
        "Asia/Shanghai": 1,
        "Europe/Berlin": 7200,
    }
    assert with_utc_offsets({"request": {}, "grants": []}) == {"request": {}, "grants": []}


@pytest.mark.parametrize(
    "bad",
    [
        {"request": {"now_ns": float("nan")}},
        {"grants": {1, 2}},
        {"principal": {"name": b"bytes"}},
        {1: "non-string key"},
        {"request": {"now_ns": 2**70}},
    ],
    ids=["nan", "set", "bytes", "int-key", "huge-int"],
)
def test_input_that_is_not_json_is_unavailable(engine: RegoEngine, bad: dict[Any, Any]) -> None:
    with pytest.raises(PolicyUnavailable):
        engine.evaluate(bad)


def test_a_closed_engine_is_unavailable(tmp_path: Path) -> None:
    directory = write_policies(tmp_path / "p", {"access.rego": MINIMAL_DECISION})
    engine = RegoEngine.from_directory(directory, workers=1)
    engine.close()
    with pytest.raises(PolicyUnavailable, match="closed"):
        engine.evaluate({})


# --- concurrency and speed -------------------------------------------------------------------


def test_concurrent_evaluations_agree_with_serial_ones(engine: RegoEngine) -> None:
    documents = [row.values[0].document for row in TABLE]
    expected = [engine.evaluate(d) for d in documents]
    assert concurrent_mismatches(engine.evaluate, documents, expected, threads=6, rounds=5) == []


def test_decisions_use_the_compiled_bundle(engine: RegoEngine) -> None:
    # Re-parsing the policy costs ~25 ms per query in rego-cpp; the bundle a few
    # hundred microseconds to a few milliseconds on a busy machine.
    document = request_document(grants=[grant(window=OFFICE_HOURS)])
    for _ in range(20):
        engine.evaluate(document)
    timings = []
    for _ in range(200):
        started = time.perf_counter()
        engine.evaluate(document)
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.015


# --- the ceiling never breaks ----------------------------------------------------------------

KINDS = ["employee", "service", "alumni", "partner", "officer", "admin"]

grants_strategy = st.lists(
    st.builds(
        grant,
        id=st.integers(1, 50),
        profile=st.sampled_from(PROFILE_ORDER + ["secret"]),
        purpose=st.sampled_from([None, "surgical robot training", "marketing"]),
        approvals=st.integers(0, 3),
        dataset=st.sampled_from([None, "patients", "scans"]),
        window=st.sampled_from([None, OFFICE_HOURS]),
        row_cap=st.sampled_from([None, 10, 10000]),
    ),
    max_size=4,
    unique_by=lambda g: g["id"],
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(KINDS),
    status=st.sampled_from(["active", "active", "departed", "suspended"]),
    org_status=st.sampled_from(["active", "active", "suspended"]),
    grants=grants_strategy,
    purpose=st.sampled_from([None, "", "surgical robot training", "marketing"]),
    requested=st.sampled_from([None, *PROFILE_ORDER]),
    now_ns=st.sampled_from([TUE_1000_SHANGHAI, TUE_0759_SHANGHAI]),
)
def test_no_decision_exceeds_the_kind_ceiling(
    engine: RegoEngine,
    kind: str,
    status: str,
    org_status: str,
    grants: list[dict[str, Any]],
    purpose: str | None,
    requested: str | None,
    now_ns: int,
) -> None:
    document = request_document(
        principal={"kind": kind, "status": status, "org_status": org_status},
        request={"purpose": purpose, "profile": requested, "now_ns": now_ns},
        grants=grants,
    )
    decision = engine.evaluate(document)
    obligations = decision["obligations"]
    assert decision["reasons"]
    if not decision["allow"]:
        assert obligations["profile"] is None and obligations["grant_id"] is None
        return
    assert kind in CEILING and status == "active" and org_status == "active"
    profile = obligations["profile"]
    assert PROFILE_ORDER.index(profile) <= PROFILE_ORDER.index(CEILING[kind])
    chosen = next(g for g in grants if g["id"] == obligations["grant_id"])
    assert PROFILE_ORDER.index(profile) <= PROFILE_ORDER.index(chosen["profile"])
    if profile == "raw":
        assert chosen["approvals"] >= 2
    if requested is not None:
        assert profile == requested
    if kind in ("partner", "alumni"):
        assert purpose and chosen["purpose"] == purpose
