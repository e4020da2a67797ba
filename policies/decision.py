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
    # What the decision saw (lines, input document; no secrets), recorded in the audit
    # log so that the decision can be replayed under the policy version that made it.
    basis: dict[str, Any] | None = field(default=None, compare=False, repr=False)
