"""The constants and sentence helpers of the house rules restated in Python.

See :mod:`policies.house_rules`: the values here are the ones access.rego names.
"""

from __future__ import annotations

from typing import Any, TypeGuard

RANKS = {"aggregate": 0, "anonymized": 1, "pseudonymized": 2, "raw": 3}
PROFILES = ("aggregate", "anonymized", "pseudonymized", "raw")
KIND_CEILING = {
    "employee": "raw",
    "service": "pseudonymized",
    "alumni": "anonymized",
    "partner": "anonymized",
}
GOVERNING_KINDS = frozenset({"officer", "admin"})
PURPOSE_BOUND_KINDS = frozenset({"alumni", "partner"})
RAW_MIN_APPROVALS = 2
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
KIND_PLURAL = {
    "employee": "employees",
    "service": "service principals",
    "alumni": "alumni",
    "partner": "partners",
    "officer": "officers",
    "admin": "admins",
}
STATUS_PHRASE = {"departed": "has departed", "suspended": "is suspended"}


class Unsupported(Exception):
    """The document holds something these rules do not model; Rego must decide."""


def text(value: Any) -> str:
    """Rego's ``text``: strings as they are, integers spelled out; nothing else here."""
    if isinstance(value, str):
        return value
    if is_int(value):
        return str(value)
    raise Unsupported(f"no sentence form for {type(value).__name__}")


def say(*parts: Any) -> str:
    return "".join(text(p) for p in parts)


def quoted(value: Any) -> str:
    return f"'{text(value)}'"


def is_int(value: Any) -> TypeGuard[int]:
    """An integer Rego's input takes (64 bits; a wider one is refused there)."""
    return (
        isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX
    )


def optional_str(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise Unsupported("expected a string or null")
    return value
