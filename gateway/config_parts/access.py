"""The sections that bound access: ``modules``, ``separation``, ``grants`` and
``budgets``."""

from __future__ import annotations

from pydantic import Field

from gateway.config_parts.common import Profile, Strict


class Module(Strict):
    custodians: list[str]
    approvals_required: int = Field(1, ge=1, le=3)
    description: str = ""
    max_days: dict[Profile, int] = Field(
        default_factory=lambda: {  # type: ignore[arg-type]
            "raw": 30,
            "pseudonymized": 90,
            "anonymized": 365,
            "aggregate": 365,
        }
    )


class Separation(Strict):
    max_modules_per_principal: int | None = Field(None, ge=1)
    exclusive: list[tuple[str, str]] = Field(default_factory=list)


class GrantsSection(Strict):
    """Grant hygiene: the periodic sweep, unused grants, re-certification, offboarding."""

    sweep_interval_s: int = Field(
        3600, ge=0, description="Seconds between sweeps run by the server; 0 disables them."
    )
    revoke_unused_days: int | None = Field(
        60, ge=1, description="Revoke active grants unused for this many days; null: never."
    )
    recertify_after_days: int = Field(
        90, ge=1, description="Grants older than this are listed to custodians for review."
    )
    downgrade_on_offboarding: bool = Field(
        False,
        description="Offboarding downgrades raw/pseudonymized grants that name a purpose to "
        "anonymized instead of revoking them.",
    )


class Budgets(Strict):
    """Default egress and privacy budgets; `kiteline budgets set` overrides them per grant."""

    rows_per_day: int | None = Field(
        100_000, ge=1, description="Rows one grant may receive per UTC day (null: no cap)."
    )
    rows_total: int | None = Field(
        1_000_000, ge=1, description="Rows one grant may receive over its life (null: no cap)."
    )
    epsilon_per_grant: float = Field(
        10.0, gt=0, description="Differential-privacy budget of one aggregate grant."
    )
    epsilon_per_org: float = Field(
        10.0, gt=0, description="Budget shared by all members and grants of one partner org."
    )
    epsilon_per_query: float = Field(1.0, gt=0, description="Epsilon a query spends by default.")
    max_epsilon_per_query: float = Field(2.0, gt=0, description="Most one query may spend.")
    delta: float = Field(
        1e-6, gt=0, lt=1e-3, description="Delta of the thresholded group release per query."
    )
