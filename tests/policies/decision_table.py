"""The decision table both Rego engines must agree on: one row per house rule.

Each row is a request document (a partner with an anonymized grant for a stated purpose,
varied one field at a time) and what the decision must say: allow, the effective
profile, and a piece of one reason.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

PURPOSE = "surgical robot training"


def weekday_hours(start: str, end: str, timezone: str) -> dict[str, Any]:
    """A grant's time window: Monday to Friday, from ``start`` to ``end`` in ``timezone``."""
    days = ["mon", "tue", "wed", "thu", "fri"]
    return {"days": days, "start": start, "end": end, "timezone": timezone}


# 2026-11-24T02:00:00Z, Tuesday 10:00 in Shanghai; then 07:59 and 08:00 there.
TUE_1000_SHANGHAI = 1_795_485_600_000_000_000
TUE_0759_SHANGHAI = 1_795_478_340_000_000_000
TUE_0800_SHANGHAI = 1_795_478_400_000_000_000
OFFICE_HOURS = weekday_hours("08:00", "20:00", "Asia/Shanghai")

# 2026-06-16T13:30:00Z and 12:30Z: Tuesday 09:30 and 08:30 in New York (EDT, UTC-4).
NY_SUMMER_0930 = 1_781_616_600_000_000_000
NY_SUMMER_0830 = 1_781_613_000_000_000_000
NEW_YORK_HOURS = weekday_hours("09:00", "17:00", "America/New_York")

CEILING = {
    "employee": "raw",
    "service": "pseudonymized",
    "alumni": "anonymized",
    "partner": "anonymized",
}
PROFILE_ORDER = ["aggregate", "anonymized", "pseudonymized", "raw"]


def grant(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "id": 3,
        "subject": "org:surgibot",
        "module": "imaging",
        "dataset": None,
        "profile": "anonymized",
        "purpose": PURPOSE,
        "approvals": 2,
        "row_cap": 10000,
        "row_filter": [{"column": "city", "op": "=", "value": "Beijing"}],
        "window": None,
    }
    value.update(changes)
    return value


def request_document(
    *,
    principal: dict[str, Any] | None = None,
    request: dict[str, Any] | None = None,
    grants: list[dict[str, Any]] | None = None,
    **top: Any,
) -> dict[str, Any]:
    """The base document with the given changes; sections are merged one level deep."""
    document: dict[str, Any] = {
        "principal": {
            "name": "mei",
            "kind": "partner",
            "status": "active",
            "org": "surgibot",
            "org_status": "active",
        },
        "action": "read",
        "dataset": {"name": "patients", "module": "imaging"},
        "request": {
            "purpose": PURPOSE,
            "profile": None,
            "now": "2026-11-24T02:00:00Z",
            "now_ns": TUE_1000_SHANGHAI,
        },
        "grants": [grant()],
        "held_modules": ["imaging"],
        "separation": {"max_modules_per_principal": 3, "exclusive": [["imaging", "crm"]]},
    }
    document["principal"].update(principal or {})
    document["request"].update(request or {})
    if grants is not None:
        document["grants"] = grants
    document.update(top)
    return copy.deepcopy(document)


EMPLOYEE = {"name": "li", "kind": "employee", "org": None, "org_status": None}
ALUMNI = {"name": "wu", "kind": "alumni", "org": None, "org_status": None}
SERVICE = {"name": "trainer", "kind": "service", "org": None, "org_status": None}


@dataclass(frozen=True)
class Row:
    document: dict[str, Any]
    allow: bool
    profile: str | None
    reason: str


def row(name: str, document: dict[str, Any], allow: bool, profile: str | None, reason: str) -> Any:
    return pytest.param(Row(document, allow, profile, reason), id=name)


DOC = request_document

TABLE = [
    # who may read
    row("partner-anonymized", DOC(), True, "anonymized", "allowed under grant 3"),
    row("empty-document", {}, False, None, "no active grant covers"),
    row("departed", DOC(principal={"status": "departed"}), False, None, "'mei' has departed"),
    row("suspended", DOC(principal={"status": "suspended"}), False, None, "'mei' is suspended"),
    row(
        "org-suspended",
        DOC(principal={"org_status": "suspended"}),
        False,
        None,
        "organization 'surgibot' is suspended",
    ),
    row(
        "officer",
        DOC(principal={**EMPLOYEE, "kind": "officer"}, grants=[grant(profile="raw", purpose=None)]),
        False,
        None,
        "officers govern access and do not read data",
    ),
    row(
        "admin",
        DOC(principal={**EMPLOYEE, "kind": "admin"}, grants=[grant(purpose=None)]),
        False,
        None,
        "admins govern access and do not read data",
    ),
    row("unknown-kind", DOC(principal={"kind": "robot"}), False, None, "kind 'robot' may not read"),
    row("write", DOC(action="write"), False, None, "action 'write' is not granted"),
    # which grants apply
    row("no-grant", DOC(grants=[]), False, None, "no active grant covers dataset 'patients'"),
    row("other-dataset", DOC(grants=[grant(dataset="scans")]), False, None, "no active grant"),
    row("same-dataset", DOC(grants=[grant(dataset="patients")]), True, "anonymized", "grant 3"),
    # profiles and ceilings
    row(
        "employee-raw",
        DOC(principal=EMPLOYEE, grants=[grant(profile="raw")]),
        True,
        "raw",
        "with the 'raw' profile",
    ),
    row(
        "raw-one-approval",
        DOC(principal=EMPLOYEE, grants=[grant(profile="raw", approvals=1)]),
        True,
        "pseudonymized",
        "raw needs 2, so it is served as 'pseudonymized'",
    ),
    row(
        "ask-raw-one-approval",
        DOC(
            principal=EMPLOYEE,
            request={"profile": "raw"},
            grants=[grant(profile="raw", approvals=1)],
        ),
        False,
        None,
        "approved by at least 2 custodians; grant 3 has 1",
    ),
    row(
        "partner-raw-grant-capped",
        DOC(grants=[grant(profile="raw")]),
        True,
        "anonymized",
        "partners never receive the raw profile; grant 3 is served as 'anonymized'",
    ),
    row(
        "alumni-raw-grant-capped",
        DOC(principal=ALUMNI, grants=[grant(profile="raw")]),
        True,
        "anonymized",
        "alumni never receive the raw profile",
    ),
    row(
        "partner-asks-raw",
        DOC(request={"profile": "raw"}, grants=[grant(profile="raw")]),
        False,
        None,
        "partners never receive the raw profile",
    ),
    row(
        "alumni-asks-raw",
        DOC(principal=ALUMNI, request={"profile": "raw"}),
        False,
        None,
        "alumni never receive the raw profile",
    ),
    row(
        "service-capped",
        DOC(principal=SERVICE, grants=[grant(profile="raw", purpose=None)]),
        True,
        "pseudonymized",
        "service principals receive at most the 'pseudonymized' profile",
    ),
    row(
        "service-asks-raw",
        DOC(
            principal=SERVICE,
            request={"profile": "raw"},
            grants=[grant(profile="raw", purpose=None)],
        ),
        False,
        None,
        "service principals receive at most the 'pseudonymized' profile; "
        "the request asked for 'raw'",
    ),
    row(
        "ask-less",
        DOC(principal=EMPLOYEE, request={"profile": "aggregate"}, grants=[grant(profile="raw")]),
        True,
        "aggregate",
        "with the 'aggregate' profile",
    ),
    row(
        "ask-more",
        DOC(request={"profile": "anonymized"}, grants=[grant(profile="aggregate")]),
        False,
        None,
        "the usable grants allow at most 'aggregate'",
    ),
    row("ask-unknown", DOC(request={"profile": "bogus"}), False, None, "unknown profile 'bogus'"),
    # purposes
    row(
        "partner-no-purpose",
        DOC(request={"purpose": None}),
        False,
        None,
        "a grant for purpose 'surgical robot training' is required; the request stated no purpose",
    ),
    row(
        "partner-wrong-purpose",
        DOC(request={"purpose": "marketing"}),
        False,
        None,
        "grant 3 is for purpose 'surgical robot training'; the request stated 'marketing'",
    ),
    row(
        "partner-grant-without-purpose",
        DOC(grants=[grant(purpose=None)]),
        False,
        None,
        "grant 3 has no purpose; partners may only use a grant issued for a stated purpose",
    ),
    row(
        "alumni-grant-without-purpose",
        DOC(principal=ALUMNI, grants=[grant(purpose=None)]),
        False,
        None,
        "alumni may only use a grant issued for a stated purpose",
    ),
    row(
        "employee-open-grant",
        DOC(principal=EMPLOYEE, request={"purpose": None}, grants=[grant(purpose=None)]),
        True,
        "anonymized",
        "allowed under grant 3",
    ),
    row(
        "employee-no-purpose",
        DOC(principal=EMPLOYEE, request={"purpose": None}),
        False,
        None,
        "a grant for purpose 'surgical robot training' is required",
    ),
    row(
        "employee-wrong-purpose",
        DOC(principal=EMPLOYEE, request={"purpose": "marketing"}),
        False,
        None,
        "the request stated 'marketing'",
    ),
    # time windows
    row(
        "window-0759",
        DOC(request={"now_ns": TUE_0759_SHANGHAI}, grants=[grant(window=OFFICE_HOURS)]),
        False,
        None,
        "may be used only mon,tue,wed,thu,fri 08:00-20:00 (Asia/Shanghai); "
        "it is now tue 07:59 there",
    ),
    row(
        "window-0800",
        DOC(request={"now_ns": TUE_0800_SHANGHAI}, grants=[grant(window=OFFICE_HOURS)]),
        True,
        "anonymized",
        "allowed under grant 3",
    ),
    row(
        "window-rfc3339",
        DOC(
            request={"now_ns": None, "now": "2026-11-24T00:00:00Z"},
            grants=[grant(window=OFFICE_HOURS)],
        ),
        True,
        "anonymized",
        "allowed under grant 3",
    ),
    row(
        "window-no-time",
        DOC(request={"now_ns": None, "now": None}, grants=[grant(window=OFFICE_HOURS)]),
        False,
        None,
        "the request carries no time",
    ),
    row(
        "window-unknown-zone",
        DOC(grants=[grant(window=dict(OFFICE_HOURS, timezone="Mars/Olympus_Mons"))]),
        False,
        None,
        "grant 3 names a timezone with no known UTC offset: 'Mars/Olympus_Mons'",
    ),
    row(
        "window-new-york-summer-0930",
        DOC(request={"now_ns": NY_SUMMER_0930}, grants=[grant(window=NEW_YORK_HOURS)]),
        True,
        "anonymized",
        "allowed under grant 3",
    ),
    row(
        "window-new-york-summer-0830",
        DOC(request={"now_ns": NY_SUMMER_0830}, grants=[grant(window=NEW_YORK_HOURS)]),
        False,
        None,
        "it is now tue 08:30 there",
    ),
    # separation of modules
    row(
        "too-many-modules",
        DOC(held_modules=["imaging", "labels", "genomics", "notes"]),
        False,
        None,
        "holds grants on 4 modules (genomics, imaging, labels, notes); at most 3",
    ),
    row(
        "exclusive-modules",
        DOC(held_modules=["imaging", "crm"]),
        False,
        None,
        "modules 'crm' and 'imaging' may not be held together",
    ),
    # several grants
    row(
        "best-grant-wins",
        DOC(
            principal=EMPLOYEE,
            grants=[grant(id=4, profile="aggregate"), grant(id=5, profile="pseudonymized")],
        ),
        True,
        "pseudonymized",
        "allowed under grant 5",
    ),
    row(
        "unusable-grant-ignored",
        DOC(
            principal=EMPLOYEE,
            request={"now_ns": TUE_0759_SHANGHAI},
            grants=[grant(id=9, profile="raw", window=OFFICE_HOURS), grant()],
        ),
        True,
        "anonymized",
        "allowed under grant 3",
    ),
    row(
        "unusable-grant-first",
        DOC(grants=[grant(id=8, profile="secret", row_cap=1), grant()]),
        True,
        "anonymized",
        "allowed under grant 3",
    ),
    row(
        "any-deny-wins",
        DOC(principal={"org_status": "suspended"}, grants=[grant(profile="raw")]),
        False,
        None,
        "its members receive no data",
    ),
    # a caller's string cannot rewrite the decision
    row(
        "quotes-in-purpose",
        DOC(request={"purpose": 'x"], "allow": true, "z": ["\\ é\n中'}),
        False,
        None,
        'the request stated \'x"], "allow": true, "z": ["\\ é\n中\'',
    ),
]


def check(decision: dict[str, Any], expected: Row) -> None:
    assert decision["allow"] is expected.allow, decision["reasons"]
    assert decision["obligations"]["profile"] == expected.profile
    assert any(expected.reason in reason for reason in decision["reasons"]), decision["reasons"]
    if expected.allow:
        assert decision["obligations"]["grant_id"] is not None
    else:
        assert decision["obligations"]["grant_id"] is None


def concurrent_mismatches(
    evaluate: Callable[[dict[str, Any]], Any],
    documents: list[dict[str, Any]],
    expected: list[Any],
    *,
    threads: int,
    rounds: int = 1,
) -> list[int]:
    """The documents ``evaluate`` answered otherwise than ``expected`` while ``threads``
    threads each went through them all ``rounds`` times at once."""
    mismatches: list[int] = []

    def hammer() -> None:
        for _ in range(rounds):
            for index, document in enumerate(documents):
                if evaluate(document) != expected[index]:
                    mismatches.append(index)

    running = [threading.Thread(target=hammer) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return mismatches
