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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, select

from gateway.access.grants import GrantIndex, GrantRecord, active_grants
from gateway.access.policy_lines import READ, Standing, deny_lines, grant_lines
from gateway.access.principals import Caller
from gateway.config import Config
from gateway.state.database import read_versions
from gateway.state.models import Org, Principal
from policies import CasbinEngine, Decision, Obligations, Profile

log = logging.getLogger(__name__)

CACHE_SIZE = 65_536


class RegoEvaluator(Protocol):
    version: str

    def evaluate(self, input: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class _Snapshot:
    versions: tuple[int, ...]
    casbin: CasbinEngine
    grants: GrantIndex
    # Explicit deny lines (as text) and the sentence explaining each.
    denies: dict[str, str]
    # The lines (as text, without the "p, ") by subject, for the decision's basis.
    lines: dict[str, tuple[str, ...]]
    # The separation denies hold while the grants they count do: the snapshot is
    # rebuilt at the earliest expiry.
    valid_until: datetime | None


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


def _next_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0) + timedelta(minutes=1)


class Decider:
    def __init__(
        self,
        engine: Engine,
        config: Config,
        rego: RegoEvaluator,
        *,
        redact: Callable[[Any], str] | None = None,
    ) -> None:
        """``redact`` hashes filter literals for the decision basis recorded in audit
        events; without it decisions carry no basis."""
        self._engine = engine
        self._redact = redact
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

    def snapshot(
        self, versions: tuple[int, ...] | None = None, at: datetime | None = None
    ) -> _Snapshot:
        at = at or datetime.now(UTC)

        def fresh(snapshot: _Snapshot | None, versions: tuple[int, ...] | None) -> bool:
            return (
                snapshot is not None
                and versions is not None
                and snapshot.versions == versions
                and (snapshot.valid_until is None or at < snapshot.valid_until)
            )

        if fresh(self._snapshot, versions):
            assert self._snapshot is not None
            return self._snapshot
        with self._lock:
            with self._engine.connect() as conn:
                versions = read_versions(conn)
                if fresh(self._snapshot, versions):
                    assert self._snapshot is not None
                    return self._snapshot
                grants = active_grants(conn)
                principals = [
                    Standing(*row)
                    for row in conn.execute(
                        select(Principal.name, Principal.kind, Principal.status, Principal.org)
                    )
                ]
                orgs = {name: status for name, status in conn.execute(select(Org.name, Org.status))}
            index = GrantIndex(grants)
            denies = deny_lines(
                principals=principals,
                orgs=orgs,
                index=index,
                separation=self._config.separation,
                at=at,
            )
            lines = grant_lines(grants) + list(denies)
            by_subject: dict[str, list[str]] = {}
            for line in lines:
                by_subject.setdefault(line.values[0], []).append(line.text()[3:])
            snapshot = _Snapshot(
                versions,
                CasbinEngine(lines),
                index,
                {line.text()[3:]: reason for line, reason in denies.items()},
                {subject: tuple(texts) for subject, texts in by_subject.items()},
                min((g.expires_at for g in grants if g.expires_at > at), default=None),
            )
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
        snapshot = self.snapshot(caller.versions, at)
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
        snapshot = self.snapshot(caller.versions, at)
        grants = self._candidates(snapshot, caller, dataset, at)
        return self._explain(snapshot, caller, dataset, at, purpose, profile, grants)

    def covering_grants(self, *, caller: Caller, dataset: str, at: datetime) -> list[GrantRecord]:
        """The unexpired active grants that cover ``dataset`` for ``caller`` (directly
        or through its org): the grants a decision for them weighs."""
        return self._candidates(self.snapshot(caller.versions, at), caller, dataset, at)

    def holders(self, dataset: str, at: datetime) -> set[str]:
        """Subjects (``user:``/``org:``) holding an unexpired grant covering ``dataset``."""
        module = self._config.datasets[dataset].module
        return {
            g.subject
            for g in self.snapshot(None, at).grants.grants
            if g.covers(module, dataset) and g.expires_at > at
        }

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
        document = self._input(snapshot, caller, dataset, module, at, purpose, profile, grants)
        return self._evaluate(
            snapshot, caller.subjects, dataset, module, document, grants, at, self._rego
        )

    def replay(
        self, basis: Mapping[str, Any], *, rego: RegoEvaluator, casbin: CasbinEngine
    ) -> Explanation:
        """Decide again from a recorded basis (see ``_basis``), under the given engines:
        the policy version the decision was made under, with the lines and the input
        document it saw."""
        document = dict(basis["input"])
        at = datetime.fromisoformat(str(document["request"]["now"]).replace("Z", "+00:00"))
        columns = basis.get("grant_columns") or {}
        grants = [
            GrantRecord(
                id=g["id"],
                subject=g["subject"],
                module=g["module"],
                dataset=g["dataset"],
                profile=g["profile"],
                purpose=g["purpose"],
                approvals=g["approvals"],
                columns=tuple(columns[str(g["id"])]) if columns.get(str(g["id"])) else None,
                row_filter=tuple(g.get("row_filter") or ()),
                row_cap=g["row_cap"],
                # Recorded grants were in force when the decision was made.
                expires_at=datetime.max.replace(tzinfo=UTC),
                window=g.get("window"),
            )
            for g in document.get("grants") or []
        ]
        snapshot = _Snapshot(
            (),
            casbin,
            GrantIndex(grants),
            {line: why for line, why in basis.get("denies") or ()},
            {},
            None,
        )
        return self._evaluate(
            snapshot,
            tuple(basis["subjects"]),
            str(basis["dataset"]),
            str(basis["module"]),
            document,
            grants,
            at,
            rego,
        )

    def _evaluate(
        self,
        snapshot: _Snapshot,
        subjects: tuple[str, ...],
        dataset: str,
        module: str,
        document: dict[str, Any],
        grants: list[GrantRecord],
        at: datetime,
        rego: RegoEvaluator,
    ) -> Explanation:
        """Both engines on one request; the decision is the conjunction, deny wins."""
        casbin_allowed, lines = snapshot.casbin.check(
            subjects=subjects, module=module, dataset=dataset, action=READ
        )
        result = rego.evaluate(document)
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
            reasons = self._refusal(
                snapshot,
                subjects,
                dataset,
                module,
                at,
                grants,
                lines,
                casbin_allowed,
                rego_allowed,
                rego_reasons,
            )
        basis = self._basis(snapshot, subjects, dataset, module, document, grants)
        if basis is not None:
            basis["decided"] = {
                "allowed": allowed,
                "reasons": list(reasons),
                "profile": obligations.profile if allowed and obligations else None,
                "grant_id": obligations.grant_id if allowed and obligations else None,
            }
        decision = Decision(
            allowed,
            tuple(reasons),
            obligations if allowed else None,
            matched=tuple(lines),
            basis=basis,
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

    @staticmethod
    def _refusal(
        snapshot: _Snapshot,
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
        reasons = [] if rego_allowed else list(rego_reasons)
        explicit = [snapshot.denies[line] for line in lines if line in snapshot.denies]
        if rego_allowed:
            # The engines disagree: the explicit deny is what refused.
            reasons.extend(explicit)
        if not grants:
            expired = [
                g
                for g in snapshot.grants.for_request(subjects, module, dataset)
                if g.expires_at <= at
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

    def _basis(
        self,
        snapshot: _Snapshot,
        subjects: tuple[str, ...],
        dataset: str,
        module: str,
        document: dict[str, Any],
        grants: list[GrantRecord],
    ) -> dict[str, Any] | None:
        """What the decision saw, free of secrets, for the audit log: the casbin lines
        that could match, the explicit denies among them, and the Rego input with the
        grants' filter literals hashed. ``replay`` decides again from it."""
        if self._redact is None:
            return None
        redact = self._redact
        lines = [
            line
            for subject in subjects
            for line in snapshot.lines.get(subject, ())
            if line.split(", ")[1] in ("*", module)
        ]
        grant_inputs = [
            {
                **g,
                "row_filter": [{**f, "value": redact(f.get("value"))} for f in g["row_filter"]]
                if g.get("row_filter")
                else None,
            }
            for g in document["grants"]
        ]
        return {
            "subjects": list(subjects),
            "dataset": dataset,
            "module": module,
            "lines": lines,
            # Pairs, not a mapping: the audit log bounds the length of mapping keys.
            "denies": [[line, snapshot.denies[line]] for line in lines if line in snapshot.denies],
            "grant_columns": {str(g.id): list(g.columns) for g in grants if g.columns},
            "input": {**document, "grants": grant_inputs},
        }

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
