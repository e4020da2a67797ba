"""The client's pure parts: when to retry, problem types to exceptions, profile files."""

from __future__ import annotations

import random
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kiteline_client import (
    AccessDenied,
    BudgetExhausted,
    Conflict,
    InvalidRequest,
    NotFound,
    ProblemError,
    Profile,
    ProfileError,
    Retry,
    Unauthenticated,
    Unavailable,
    load_profile,
    save_profile,
)
from kiteline_client.errors import problem_error
from kiteline_client.retries import parse_retry_after

RETRY = Retry(attempts=4, base=1.0, cap=4.0, max_wait=30.0, random=random.Random(1))


@pytest.mark.parametrize(
    ("status", "retry_after", "attempt", "waits"),
    [
        (None, None, 0, True),  # connection refused: back off
        (503, None, 0, True),
        (503, 2.0, 0, True),
        (429, 2.0, 0, True),  # a short Retry-After is waited for
        (429, None, 0, False),  # a budget with no Retry-After is final
        (429, 3600.0, 0, False),  # a budget that resets in an hour is final
        (400, None, 0, False),
        (401, None, 0, False),
        (403, None, 0, False),
        (404, None, 0, False),
        (409, None, 0, False),
        (500, None, 0, False),
        (503, None, 3, False),  # out of attempts
    ],
)
def test_when_the_client_retries(status, retry_after, attempt, waits):
    wait = RETRY.wait_for(status, retry_after, attempt)
    assert (wait is not None) is waits
    if wait is not None and retry_after is not None:
        assert retry_after <= wait <= retry_after + RETRY.base


def test_backoff_grows_with_jitter_up_to_the_cap():
    retry = Retry(base=1.0, cap=4.0, random=random.Random(7))
    waits = [[retry.backoff(n) for _ in range(200)] for n in range(5)]
    assert all(0 <= w <= min(4.0, 2**n) for n, ws in enumerate(waits) for w in ws)
    assert max(waits[0]) <= 1.0 < max(waits[2])
    assert len({round(w, 6) for w in waits[3]}) > 100  # jittered, not a fixed schedule


def test_retry_after_takes_seconds_or_an_http_date():
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("status", "slug", "expected"),
    [
        (400, "invalid-request", InvalidRequest),
        (401, "unauthenticated", Unauthenticated),
        (403, "access-denied", AccessDenied),
        (404, "not-found", NotFound),
        (409, "conflict", Conflict),
        (429, "budget-exhausted", BudgetExhausted),
        (503, "unavailable", Unavailable),
        (418, "teapot", ProblemError),
        (403, "", AccessDenied),  # no type: the status decides
    ],
)
def test_problem_types_become_typed_errors(status, slug, expected):
    body = {"title": "t", "detail": "d", "request_id": "r1", "reasons": ["why"], "rule": "x"}
    if slug:
        body["type"] = f"urn:kiteline:problem:{slug}"
    error = problem_error(status, body, retry_after=None)
    assert type(error) is expected and error.status == status and error.request_id == "r1"
    if isinstance(error, AccessDenied):
        assert error.reasons == ["why"] and error.rule == "x"


def test_budget_errors_carry_what_remains():
    body = {
        "type": "urn:kiteline:problem:budget-exhausted",
        "budget": "epsilon",
        "remaining": 0.5,
        "needed": 1.0,
    }
    error = problem_error(429, body, retry_after=60.0)
    assert isinstance(error, BudgetExhausted)
    assert (error.budget, error.remaining, error.needed, error.retry_after) == (
        "epsilon",
        0.5,
        1.0,
        60.0,
    )
    assert error.resets_at is None


def test_budget_errors_carry_when_the_budget_resets():
    body = {
        "type": "urn:kiteline:problem:budget-exhausted",
        "budget": "rows today",
        "remaining": 0,
        "needed": 10,
        "resets_at": "2026-12-08T00:00:00Z",
    }
    error = problem_error(429, body, retry_after=3600.0)
    assert isinstance(error, BudgetExhausted)
    assert error.resets_at == datetime(2026, 12, 8, tzinfo=UTC)
    assert problem_error(429, {**body, "resets_at": "soon"}).resets_at is None


def test_a_profile_is_written_private_and_refused_when_exposed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "kiteline" / "profile.json"
    save_profile(Profile("http://gw", "secret-token"), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_profile(path).resolve_token() == "secret-token"
    path.chmod(0o644)
    with pytest.raises(ProfileError, match="chmod 600"):
        load_profile(path)
    # A reference holds no secret, so a readable profile is fine.
    save_profile(Profile("http://gw", "env:MY_TOKEN"), path)
    path.chmod(0o644)
    monkeypatch.setenv("MY_TOKEN", "from-env")
    assert load_profile(path).resolve_token() == "from-env"
    monkeypatch.delenv("MY_TOKEN")
    with pytest.raises(ProfileError, match="MY_TOKEN"):
        load_profile(path).resolve_token()
    with pytest.raises(ProfileError, match="no profile"):
        load_profile(tmp_path / "missing.json")
