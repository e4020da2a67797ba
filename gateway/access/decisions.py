"""One decision per request: casbin's coarse check and Rego's conditions, both must allow.

casbin answers "may this subject touch this dataset of this module at all" from lines
derived from the active grants. Rego (policies/*.rego) answers under which conditions
and with which obligations: profile ceilings by principal kind, purposes, time windows,
module separation, separation of duties. Any deny wins.

Decisions are cached, keyed by everything that can change them: the caller's identity
and status, the request, the state versions read together with the caller's key (so
a grant change, revocation or offboarding made by any gateway process is seen by the
very next request), and the policy version. A cached decision also never outlives the
earliest expiry of the grants it used, nor the minute it was made in (time windows
are expressed in minutes).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine

from gateway.access.grants import GrantIndex, GrantRecord, active_grants
from gateway.access.principals import Caller
from gateway.config import Config
from gateway.state.database import read_versions
from policies import CasbinEngine, Decision, Obligations, PolicyLine, Profile

log = logging.getLogger(__name__)

READ = "read"
CACHE_SIZE = 65_536


class RegoEvaluator(Protocol):
    version: str

    def evaluate(self, input: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class _Snapshot:
    versions: tuple[int, ...]
    casbin: CasbinEngine
    grants: GrantIndex


@dataclass(frozen=True, slots=True)
class Explanation:
    """Each engine's verdict, for ``POST /v1/decisions/explain``."""

    decision: Decision
    casbin_allowed: bool
    casbin_lines: tuple[str, ...]
    rego_allowed: bool | None
    rego_reasons: tuple[str, ...]
    rego_obligations: dict[str, Any] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=dict)


def grant_lines(grants: list[GrantRecord]) -> list[PolicyLine]:
    return [PolicyLine("p", (g.subject, g.module, g.dataset or "*", READ, "allow")) for g in grants]


def _next_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0) + timedelta(minutes=1)


class Decider:
    def __init__(self, engine: Engine, config: Config, rego: RegoEvaluator) -> None:
        self._engine = engine
        self._config = config
        self._rego = rego
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._cache: OrderedDict[tuple[Any, ...], tuple[Decision, datetime]] = OrderedDict()

    @property
    def policy_version(self) -> str:
        return self._rego.version

    def use_policy(self, rego: RegoEvaluator) -> None:
        """Swap in a reloaded policy; cached decisions of the old one are dropped."""
        with self._lock:
            self._rego = rego
            self._cache.clear()

    def snapshot(self, versions: tuple[int, ...] | None = None) -> _Snapshot:
        current = self._snapshot
        if versions is not None and current is not None and current.versions == versions:
            return current
        with self._lock:
            with self._engine.connect() as conn:
                versions = read_versions(conn)
                current = self._snapshot
                if current is not None and current.versions == versions:
                    return current
                grants = active_grants(conn)
            snapshot = _Snapshot(versions, CasbinEngine(grant_lines(grants)), GrantIndex(grants))
            self._snapshot = snapshot
            self._cache.clear()
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
        """Deny by default; allow when casbin and Rego both allow.

        ``catalog`` answers "may the caller see this dataset in the catalog": a partner
        lists datasets before choosing a purpose, so any purpose of the caller's grants
        is tried; every read still checks the stated one."""
        snapshot = self.snapshot(caller.versions)
        key = (
            caller.id,
            caller.kind,
            caller.status,
            caller.org,
            caller.org_status,
            dataset,
            purpose,
            profile,
            catalog,
            snapshot.versions,
            self._rego.version,
        )
        cached = self._cache.get(key)
        if cached is not None and at < cached[1]:
            return cached[0]
        decision, valid_until = self._decide(
            snapshot, caller, dataset, at, purpose, profile, catalog
        )
        with self._lock:
            self._cache[key] = (decision, valid_until)
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return decision

    def _decide(
        self,
        snapshot: _Snapshot,
        caller: Caller,
        dataset: str,
        at: datetime,
        purpose: str | None,
        profile: Profile | None,
        catalog: bool,
    ) -> tuple[Decision, datetime]:
        grants = self._candidates(snapshot, caller, dataset, at)
        valid_until = min([_next_minute(at)] + [g.expires_at for g in grants])
        purposes: list[str | None] = [purpose]
        if catalog and purpose is None:
            purposes += sorted({g.purpose for g in grants if g.purpose})
        explanation = None
        for candidate in purposes:
            explanation = self._explain(snapshot, caller, dataset, at, candidate, profile, grants)
            if explanation.decision.allowed:
                break
        assert explanation is not None
        return explanation.decision, valid_until

    def explain(
        self,
        *,
        caller: Caller,
        dataset: str,
        at: datetime,
        purpose: str | None = None,
        profile: Profile | None = None,
    ) -> Explanation:
        snapshot = self.snapshot(caller.versions)
        grants = self._candidates(snapshot, caller, dataset, at)
        return self._explain(snapshot, caller, dataset, at, purpose, profile, grants)

    def _candidates(
        self, snapshot: _Snapshot, caller: Caller, dataset: str, at: datetime
    ) -> list[GrantRecord]:
        module = self._config.datasets[dataset].module
        return [
            g
            for g in snapshot.grants.for_request(caller.subjects, module, dataset)
            if g.expires_at > at
        ]

    def _explain(
        self,
        snapshot: _Snapshot,
        caller: Caller,
        dataset: str,
        at: datetime,
        purpose: str | None,
        profile: Profile | None,
        grants: list[GrantRecord],
    ) -> Explanation:
        module = self._config.datasets[dataset].module
        casbin_allowed, lines = snapshot.casbin.check(
            subjects=caller.subjects, module=module, dataset=dataset, action=READ
        )
        document = self._input(snapshot, caller, dataset, module, at, purpose, profile, grants)
        result = self._rego.evaluate(document)
        rego_allowed = bool(result.get("allow", False))
        rego_reasons = tuple(str(r) for r in result.get("reasons", ()))
        raw_obligations = result.get("obligations") or {}
        allowed = casbin_allowed and rego_allowed
        obligations = self._obligations(raw_obligations, grants) if allowed else None
        if allowed and obligations is None:
            allowed = False
            reasons = [
                "the policy allowed the read without naming a usable grant and "
                "profile; refusing (fail closed)"
            ]
        elif allowed:
            assert obligations is not None
            reasons = list(rego_reasons) or [
                f"grant {obligations.grant_id} allows {obligations.profile!r}"
            ]
        else:
            reasons = [] if rego_allowed else list(rego_reasons)
            if not grants:
                expired = [
                    g
                    for g in snapshot.grants.for_request(caller.subjects, module, dataset)
                    if g.expires_at <= at
                ]
                if expired:
                    last = max(g.expires_at for g in expired)
                    reasons.insert(
                        0,
                        f"your grant on {dataset!r} expired at "
                        f"{last.strftime('%Y-%m-%d %H:%M:%S')} UTC; request a new one",
                    )
            if not casbin_allowed and not any("no active grant" in r for r in reasons):
                reasons.append(
                    f"no active grant covers dataset {dataset!r} for you or your "
                    "org; request one from the module's custodians"
                )
            # The most specific reason leads: "no grant" is what every other rule implies.
            reasons.sort(key=lambda r: "no active grant" in r)
            reasons = reasons or ["denied by default"]
        decision = Decision(
            allowed, tuple(reasons), obligations if allowed else None, matched=tuple(lines)
        )
        return Explanation(
            decision,
            casbin_allowed,
            tuple(lines),
            rego_allowed,
            rego_reasons,
            dict(raw_obligations),
            document,
        )

    def _input(
        self,
        snapshot: _Snapshot,
        caller: Caller,
        dataset: str,
        module: str,
        at: datetime,
        purpose: str | None,
        profile: Profile | None,
        grants: list[GrantRecord],
    ) -> dict[str, Any]:
        separation = self._config.separation
        return {
            "principal": {
                "name": caller.name,
                "kind": caller.kind,
                "status": caller.status,
                "org": caller.org,
                "org_status": caller.org_status,
            },
            "action": READ,
            "dataset": {"name": dataset, "module": module},
            "request": {
                "purpose": purpose,
                "profile": profile,
                "now": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "now_ns": int(at.timestamp() * 1_000_000_000),
            },
            "grants": [
                {
                    "id": g.id,
                    "subject": g.subject,
                    "module": g.module,
                    "dataset": g.dataset,
                    "profile": g.profile,
                    "purpose": g.purpose,
                    "approvals": g.approvals,
                    "row_cap": g.row_cap,
                    "row_filter": list(g.row_filter) or None,
                    "window": g.window,
                }
                for g in grants
            ],
            "held_modules": sorted(snapshot.grants.modules_held(caller.subjects, at)),
            "separation": {
                "max_modules_per_principal": separation.max_modules_per_principal,
                "exclusive": [list(pair) for pair in separation.exclusive],
            },
        }

    @staticmethod
    def _obligations(raw: dict[str, Any], grants: list[GrantRecord]) -> Obligations | None:
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
