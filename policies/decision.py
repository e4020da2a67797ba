"""What every policy engine returns: a decision with its reasons and obligations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from policies.profiles import Profile


@dataclass(frozen=True, slots=True)
class Obligations:
    """What the gateway must do to the data when the decision allows it."""

    profile: Profile
    grant_id: int
    columns: tuple[str, ...] | None = None  # restrict to these columns; None: all visible
    row_filters: tuple[dict[str, Any], ...] = ()
    row_cap: int | None = None
    purpose: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reasons: tuple[str, ...]
    obligations: Obligations | None = None
    matched: tuple[str, ...] = field(default=())  # the policy lines that matched, for explain
