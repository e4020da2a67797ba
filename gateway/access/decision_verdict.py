"""The verdict of both engines on one request: obligations when allowed, reasons when not."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.access.decision_state import Snapshot
from gateway.access.grants import GrantRecord
from policies import Obligations


def obligations_of(raw: dict[str, Any], grants: list[GrantRecord]) -> Obligations | None:
    """Rego's obligations bound to the grant they name; None when they name no usable one."""
    by_id = {g.id: g for g in grants}
    grant = by_id.get(raw.get("grant_id"))  # type: ignore[arg-type]
    profile = raw.get("profile")
    if grant is None or profile not in ("raw", "pseudonymized", "anonymized", "aggregate"):
        return None
    return Obligations(
        profile=profile,
        grant_id=grant.id,
        columns=grant.columns,
        row_filters=tuple(raw.get("row_filters") or grant.row_filter),
        row_cap=raw.get("row_cap", grant.row_cap),
        purpose=grant.purpose,
    )


def refusal(
    snapshot: Snapshot,
    subjects: tuple[str, ...],
    dataset: str,
    module: str,
    at: datetime,
    grants: list[GrantRecord],
    lines: list[str],
    casbin_allowed: bool,
    rego_allowed: bool,
    rego_reasons: tuple[str, ...],
) -> list[str]:
    """Why a request was refused, the most specific reason first."""
    reasons = [] if rego_allowed else list(rego_reasons)
    explicit = [snapshot.denies[line] for line in lines if line in snapshot.denies]
    if rego_allowed:
        # The engines disagree: the explicit deny is what refused.
        reasons.extend(explicit)
    if not grants:
        expired = [
            g for g in snapshot.grants.for_request(subjects, module, dataset) if g.expires_at <= at
        ]
        if expired:
            last = max(g.expires_at for g in expired)
            reasons.insert(
                0,
                f"your grant on {dataset!r} expired at "
                f"{last.strftime('%Y-%m-%d %H:%M:%S')} UTC; request a new one",
            )
    if not casbin_allowed and not explicit and not any("no active grant" in r for r in reasons):
        reasons.append(
            f"no active grant covers dataset {dataset!r} for you or your "
            "org; request one from the module's custodians"
        )
    # The most specific reason leads: "no grant" is what every other rule implies.
    reasons.sort(key=lambda r: "no active grant" in r)
    return reasons or ["denied by default"]
