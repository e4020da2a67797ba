"""One decision per request: casbin's coarse check, then the grant's conditions.

The casbin enforcer and the grant index are rebuilt whenever the ``grants`` version in
the state database moves; the version is read on every request, so a revocation made by
any gateway process is seen by the very next request of every other.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from gateway.config import Config
from gateway.database import read_versions
from gateway.grants import GrantIndex, GrantRecord, active_grants
from gateway.principals import Caller
from policies.casbin_engine import CasbinEngine, PolicyLine
from policies.decision import Decision, Obligations
from policies.profiles import KIND_CEILING, Profile, cap, is_at_most, rank

log = logging.getLogger(__name__)

READ = "read"


@dataclass(frozen=True, slots=True)
class _Snapshot:
    versions: tuple[int, ...]
    casbin: CasbinEngine
    grants: GrantIndex


def grant_lines(grants: list[GrantRecord]) -> list[PolicyLine]:
    return [PolicyLine("p", (g.subject, g.module, g.dataset or "*", READ, "allow")) for g in grants]


class Decider:
    def __init__(self, engine: Engine, config: Config) -> None:
        self._engine = engine
        self._config = config
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None

    def snapshot(self) -> _Snapshot:
        with self._engine.connect() as conn:
            versions = read_versions(conn)
            current = self._snapshot
            if current is not None and current.versions == versions:
                return current
            with self._lock:
                current = self._snapshot
                if current is not None and current.versions == versions:
                    return current
                grants = active_grants(conn)
        snapshot = _Snapshot(versions, CasbinEngine(grant_lines(grants)), GrantIndex(grants))
        self._snapshot = snapshot
        log.debug("policy snapshot rebuilt at versions %s (%d grants)", versions, len(grants))
        return snapshot

    def decide(
        self,
        *,
        caller: Caller,
        dataset: str,
        at: datetime,
        purpose: str | None = None,
        profile: Profile | None = None,
        catalog: bool = False,
    ) -> Decision:
        """Deny by default; allow when a usable grant covers the dataset.

        ``catalog`` answers "may the caller see this dataset in the catalog": the purpose
        is not checked there (a partner lists datasets before choosing a purpose), but
        the grant's purpose is shown, and every read checks it."""
        module = self._config.datasets[dataset].module
        if caller.status != "active":
            return Decision(False, (f"principal {caller.name!r} is {caller.status}",))
        if caller.org and caller.org_status not in (None, "active"):
            return Decision(False, (f"org {caller.org!r} is {caller.org_status}",))
        ceiling = KIND_CEILING.get(caller.kind)
        if ceiling is None:
            return Decision(
                False, (f"{caller.kind}s govern data and do not read it (separation of duties)",)
            )
        snapshot = self.snapshot()
        allowed, matched = snapshot.casbin.check(
            subjects=caller.subjects, module=module, dataset=dataset, action=READ
        )
        if not allowed:
            return Decision(
                False,
                (
                    f"no active grant covers dataset {dataset!r} for you or "
                    "your org; request one from the module's custodians",
                ),
                matched=tuple(matched),
            )
        candidates = [
            g
            for g in snapshot.grants.for_request(caller.subjects, module, dataset)
            if g.expires_at > at
        ]
        if not candidates:
            return Decision(
                False, (f"your grant on {dataset!r} has expired",), matched=tuple(matched)
            )
        if catalog and purpose is None:
            usable, purpose_reasons = candidates, []
        else:
            usable, purpose_reasons = _match_purpose(candidates, caller, purpose)
        if not usable:
            return Decision(False, tuple(purpose_reasons), matched=tuple(matched))
        best, best_profile = _best_grant(usable, ceiling)
        if profile is not None:
            if not is_at_most(profile, best_profile):
                reasons = [
                    f"you may read {dataset!r} at most as {best_profile!r}; "
                    f"{profile!r} was requested"
                ]
                if profile == "raw" and caller.kind in ("alumni", "partner"):
                    reasons.insert(0, f"{caller.kind} principals never receive the raw profile")
                return Decision(False, tuple(reasons), matched=tuple(matched))
            best_profile = profile
        obligations = Obligations(
            profile=best_profile,
            grant_id=best.id,
            columns=best.columns,
            row_filters=best.row_filter,
            row_cap=best.row_cap,
            purpose=best.purpose,
        )
        return Decision(
            True, (f"grant {best.id} allows {best_profile!r}",), obligations, matched=tuple(matched)
        )


def _match_purpose(
    candidates: list[GrantRecord], caller: Caller, purpose: str | None
) -> tuple[list[GrantRecord], list[str]]:
    # Partners and alumni must always state a purpose, and it must be the grant's.
    must_state = caller.kind in ("partner", "alumni")
    usable = [
        g
        for g in candidates
        if (g.purpose is None and not must_state)
        or (g.purpose is not None and g.purpose == purpose)
    ]
    if usable:
        return usable, []
    stated = f"the request stated {purpose!r}" if purpose else "the request stated no purpose"
    wanted = sorted({g.purpose for g in candidates if g.purpose})
    if wanted:
        choices = " or ".join(repr(p) for p in wanted)
        return [], [f"a grant for purpose {choices} is required; {stated}"]
    return [], [
        f"{caller.kind} access needs a grant that names a purpose; "
        "ask the custodians to state one on your grant"
    ]


def _best_grant(grants: list[GrantRecord], ceiling: Profile) -> tuple[GrantRecord, Profile]:
    def effective(grant: GrantRecord) -> Profile:
        profile: Profile = grant.profile  # type: ignore[assignment]
        if profile == "raw" and grant.approvals < 2:
            # Raw needs two custodians' approval; a grant without it reads pseudonymized.
            profile = "pseudonymized"
        return cap(profile, ceiling)

    best = min(grants, key=lambda g: rank(effective(g)))
    return best, effective(best)
