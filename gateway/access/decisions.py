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

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from gateway.access.decision_input import decided, decision_basis, request_document
from gateway.access.decision_state import (
    Snapshot,
    apply_grant_changes,
    load_snapshot,
    pending_grant_changes,
)
from gateway.access.decision_verdict import obligations_of, refusal
from gateway.access.grants import GrantIndex, GrantRecord
from gateway.access.policy_lines import READ
from gateway.access.principals import Caller
from gateway.config import Config
from gateway.state.database import VERSION_NAMES, read_versions
from policies import CasbinEngine, Decision, Profile

log = logging.getLogger(__name__)

CACHE_SIZE = 65_536
GRANTS = VERSION_NAMES.index("grants")


class RegoEvaluator(Protocol):
    version: str

    def evaluate(self, input: dict[str, Any]) -> dict[str, Any]: ...


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
        # One build of the decision state at a time; the cache has a lock of its own,
        # held only to change it, so decisions never wait on a build they do not need.
        self._build_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._cache: OrderedDict[tuple[Any, ...], tuple[Decision, datetime]] = OrderedDict()

    @property
    def policy_version(self) -> str:
        return self._rego.version

    def use_policy(self, rego: RegoEvaluator) -> None:
        """Swap in a reloaded policy; cached decisions of the old one are dropped."""
        with self._cache_lock:
            self._rego = rego
            self._cache.clear()

    def snapshot(
        self, versions: tuple[int, ...] | None = None, at: datetime | None = None
    ) -> Snapshot:
        at = at or datetime.now(UTC)
        current = self._snapshot
        if current is not None and current.fresh(versions, at):
            return current
        # Copy on write: the new state is built beside the one in force, which keeps
        # answering requests made at its versions until the swap.
        with self._build_lock:
            with self._engine.connect() as conn:
                versions = read_versions(conn)
                current = self._snapshot
                if current is not None and current.fresh(versions, at):
                    return current
                snapshot = self._derive(conn, current, versions, at)
            with self._cache_lock:
                self._snapshot = snapshot
                self._cache.clear()
        return snapshot

    def _derive(
        self,
        conn: Connection,
        current: Snapshot | None,
        versions: tuple[int, ...],
        at: datetime,
    ) -> Snapshot:
        """The state at ``versions``: ``current`` with the logged grant changes applied
        when only grants changed since it, else a full load."""
        if (
            current is not None
            and current.at is not None
            and len(current.versions) == len(versions)
            and all(
                mine == theirs
                for i, (mine, theirs) in enumerate(zip(current.versions, versions, strict=True))
                if i != GRANTS
            )
            and versions[GRANTS] >= current.versions[GRANTS]
        ):
            changed = pending_grant_changes(conn, current.versions[GRANTS])
            if changed is not None:
                derived = apply_grant_changes(
                    conn, current, versions, changed, self._config.separation, at
                )
                if derived is not None:
                    log.debug(
                        "decision state at versions %s: %d subjects' grants read again",
                        versions,
                        len(changed),
                    )
                    return derived
        snapshot = load_snapshot(conn, versions, self._config.separation, at)
        log.debug(
            "decision state loaded at versions %s (%d grants)", versions, len(snapshot.grants)
        )
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
        with self._cache_lock:
            self._cache[key] = (decision, valid_until)
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return decision

    def _decide(
        self,
        snapshot: Snapshot,
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
        self, snapshot: Snapshot, caller: Caller, dataset: str, at: datetime
    ) -> list[GrantRecord]:
        module = self._config.datasets[dataset].module
        return [
            g
            for g in snapshot.grants.for_request(caller.subjects, module, dataset)
            if g.expires_at > at
        ]

    def _explain(
        self,
        snapshot: Snapshot,
        caller: Caller,
        dataset: str,
        at: datetime,
        purpose: str | None,
        profile: Profile | None,
        grants: list[GrantRecord],
    ) -> Explanation:
        module = self._config.datasets[dataset].module
        document = request_document(
            snapshot, self._config.separation, caller, dataset, module, at, purpose, profile, grants
        )
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
        snapshot = Snapshot(
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
        snapshot: Snapshot,
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
        obligations = (
            obligations_of(raw_obligations, grants) if casbin_allowed and rego_allowed else None
        )
        if obligations is not None:
            reasons = list(rego_reasons) or [
                f"grant {obligations.grant_id} allows {obligations.profile!r}"
            ]
        elif casbin_allowed and rego_allowed:
            reasons = [
                "the policy allowed the read without naming a usable grant and "
                "profile; refusing (fail closed)"
            ]
        else:
            reasons = refusal(
                snapshot, subjects, dataset, module, at, grants, lines,
                casbin_allowed, rego_allowed, rego_reasons,
            )  # fmt: skip
        basis = None
        if self._redact is not None:
            basis = decision_basis(
                self._redact, snapshot, subjects, dataset, module, document, grants
            )
            basis["decided"] = decided(obligations, reasons)
        decision = Decision(
            obligations is not None,
            tuple(reasons),
            obligations,
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
