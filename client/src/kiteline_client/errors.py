"""Typed errors built from the gateway's RFC 9457 problem responses.

Each problem ``type`` (``urn:kiteline:problem:<slug>``) maps to one class, so a script
catches what it can handle (``except BudgetExhausted``) and lets the rest propagate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

PROBLEM_PREFIX = "urn:kiteline:problem:"


class KitelineError(Exception):
    """Root of every error this client raises."""


class TransportFailed(KitelineError):
    """The gateway could not be reached (after the retries), or the answer broke off."""


class ProblemError(KitelineError):
    """The gateway answered with a problem. ``problem`` is the whole body."""

    slug = ""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", ""))
        self.title = str(problem.get("title", ""))
        self.detail = str(problem.get("detail", self.title))
        self.request_id = problem.get("request_id")
        super().__init__(f"{status} {self.title}: {self.detail} (request {self.request_id})")


class Unauthenticated(ProblemError):
    slug = "unauthenticated"


class AccessDenied(ProblemError):
    """The policy refused. ``reasons`` says why; ``rule`` names the rule when one did."""

    slug = "access-denied"

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(status, problem)
        self.reasons: list[str] = [str(r) for r in problem.get("reasons") or [self.detail]]
        self.rule: str | None = problem.get("rule")


class NotFound(ProblemError):
    slug = "not-found"


class InvalidRequest(ProblemError):
    slug = "invalid-request"

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(status, problem)
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])


class NotAcceptable(ProblemError):
    slug = "not-acceptable"


class Conflict(ProblemError):
    slug = "conflict"


class BudgetExhausted(ProblemError):
    """A row or privacy budget cannot pay for the request.

    ``budget`` names it, ``remaining`` is what is left of it, ``needed`` what the
    request asked for, ``resets_at`` when it starts afresh (an aware UTC datetime; None
    for a total budget, which never resets) and ``retry_after`` the seconds until then,
    when the gateway named them (a reset within a day)."""

    slug = "budget-exhausted"

    def __init__(self, status: int, problem: dict[str, Any], retry_after: float | None) -> None:
        super().__init__(status, problem)
        self.budget: str | None = problem.get("budget")
        self.remaining: float | None = problem.get("remaining")
        self.needed: float | None = problem.get("needed")
        self.resets_at = _instant(problem.get("resets_at"))
        self.retry_after = retry_after


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class Unavailable(ProblemError):
    """A dependency of the gateway (policy engine, audit log, store) could not answer."""

    slug = "unavailable"


_BY_SLUG: dict[str, type[ProblemError]] = {
    cls.slug: cls
    for cls in (
        Unauthenticated,
        AccessDenied,
        NotFound,
        InvalidRequest,
        NotAcceptable,
        Conflict,
        Unavailable,
    )
}
_BY_STATUS: dict[int, type[ProblemError]] = {
    401: Unauthenticated,
    403: AccessDenied,
    404: NotFound,
    400: InvalidRequest,
    406: NotAcceptable,
    409: Conflict,
    503: Unavailable,
}


def problem_error(
    status: int, problem: dict[str, Any], retry_after: float | None = None
) -> ProblemError:
    """The typed error for a problem body (by its ``type``, else by the status)."""
    kind = str(problem.get("type", ""))
    slug = kind.removeprefix(PROBLEM_PREFIX) if kind.startswith(PROBLEM_PREFIX) else ""
    if slug == BudgetExhausted.slug or (not slug and status == 429):
        return BudgetExhausted(status, problem, retry_after)
    cls = _BY_SLUG.get(slug) or _BY_STATUS.get(status) or ProblemError
    return cls(status, problem)


__all__ = [
    "AccessDenied",
    "BudgetExhausted",
    "Conflict",
    "InvalidRequest",
    "KitelineError",
    "NotAcceptable",
    "NotFound",
    "ProblemError",
    "TransportFailed",
    "Unauthenticated",
    "Unavailable",
    "problem_error",
]
