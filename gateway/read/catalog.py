"""The catalog: which datasets a caller may read, and what each returns under its grant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.access.decisions import Decider
from gateway.access.principals import Caller
from gateway.auditing.log import RequestMeta
from gateway.auditing.outcomes import Outcomes
from gateway.config import Config
from gateway.errors import AccessDenied, NotFound
from gateway.read.view_cache import ViewCache
from policies import Decision


@dataclass(frozen=True, eq=False, kw_only=True)
class Catalog:
    config: Config
    decider: Decider
    views: ViewCache
    outcomes: Outcomes

    def list_datasets(
        self, caller: Caller, meta: RequestMeta, purpose: str | None = None
    ) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            at = datetime.now(UTC)
            visible = []
            for name in self.config.datasets:
                decision = self.decider.decide(
                    caller=caller, dataset=name, at=at, purpose=purpose, catalog=True
                )
                if decision.allowed:
                    visible.append(self.description(name, decision))
            self.outcomes.audit.append(
                "catalog.list",
                meta=meta,
                caller=caller,
                decision="allow",
                datasets=[d["name"] for d in visible],
            )
            return visible

        # A store that cannot describe a dataset fails the listing (closed) and is audited.
        return self.outcomes.audited(
            run, caller=caller, meta=meta, dataset=None, action="catalog.list"
        )

    def describe(
        self, caller: Caller, name: str, meta: RequestMeta, purpose: str | None = None
    ) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            if name not in self.config.datasets:
                raise NotFound(f"no dataset named {name!r}", dataset=name)
            decision = self.decider.decide(
                caller=caller, dataset=name, at=datetime.now(UTC), purpose=purpose, catalog=True
            )
            if not decision.allowed:
                raise AccessDenied(decision.reasons[0], reasons=list(decision.reasons))
            description = self.description(name, decision)
            self.outcomes.audit.append(
                "catalog.describe",
                meta=meta,
                caller=caller,
                dataset=name,
                module=self.config.datasets[name].module,
                decision="allow",
                reasons=decision.reasons,
                profile=description["profile"],
            )
            return description

        return self.outcomes.audited(
            run, caller=caller, meta=meta, dataset=name, action="catalog.describe"
        )

    def description(self, name: str, decision: Decision) -> dict[str, Any]:
        assert decision.obligations is not None
        dataset = self.config.datasets[name]
        view = self.views.view(name, decision.obligations.profile, decision.obligations.columns)
        return {
            "name": name,
            "module": dataset.module,
            "description": dataset.description,
            "profile": view.profile,
            "grant_id": decision.obligations.grant_id,
            "purpose": decision.obligations.purpose,
            "columns": [c.describe() for c in view.returned]
            if view.profile != "aggregate"
            else [c.describe() for c in view.columns.values() if c.treatment != "drop"],
        }
