"""Why a principal may or may not read a dataset: both engines' answers, audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine

from gateway.access import principals
from gateway.access.decisions import Decider, Explanation
from gateway.access.principals import Caller
from gateway.auditing.log import RequestMeta
from gateway.auditing.outcomes import Outcomes
from gateway.config import Config
from gateway.errors import AccessDenied, InvalidRequest, NotFound, validation_errors
from policies import Obligations, Profile


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    principal: str | None = Field(None, max_length=64, description="Default: yourself.")
    dataset: str = Field(max_length=64)
    action: Literal["read"] = "read"
    purpose: str | None = Field(None, max_length=256)
    profile: Profile | None = None


class Explainer:
    def __init__(
        self,
        *,
        config: Config,
        engine: Engine,
        decider: Decider,
        outcomes: Outcomes,
        policy_version: Callable[[], str],
    ) -> None:
        self.config = config
        self.engine = engine
        self.decider = decider
        self.outcomes = outcomes
        self.policy_version = policy_version

    def explain(self, caller: Caller, body: bytes, meta: RequestMeta) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            try:
                request = ExplainRequest.model_validate_json(body or b"{}")
            except ValidationError as exc:
                raise InvalidRequest(
                    "the explain request is invalid", errors=validation_errors(exc)
                ) from None
            subject = self._subject(caller, request)
            if request.dataset not in self.config.datasets:
                raise NotFound(f"no dataset named {request.dataset!r}", dataset=request.dataset)
            explanation = self.decider.explain(
                caller=subject,
                dataset=request.dataset,
                at=datetime.now(UTC),
                purpose=request.purpose,
                profile=request.profile,
            )
            self.outcomes.audit.append(
                "decision.explain",
                meta=meta,
                caller=caller,
                dataset=request.dataset,
                module=self.config.datasets[request.dataset].module,
                decision="allow",
                subject=subject.name,
                outcome="allow" if explanation.decision.allowed else "deny",
            )
            return self._answer(subject, request, explanation)

        request_dataset = None
        try:
            request_dataset = ExplainRequest.model_validate_json(body or b"{}").dataset
        except ValidationError:
            pass
        return self.outcomes.audited(
            run, caller=caller, meta=meta, dataset=request_dataset, action="decision.explain"
        )

    def _subject(self, caller: Caller, request: ExplainRequest) -> Caller:
        if request.principal in (None, caller.name):
            return caller
        if caller.kind != "officer":
            raise AccessDenied(
                "only security officers may explain another principal's access",
                rule="explain others",
            )
        found = principals.caller_by_name(self.engine, request.principal or "")
        if found is None:
            raise NotFound(f"no principal named {request.principal!r}")
        return found

    def _answer(
        self, subject: Caller, request: ExplainRequest, explanation: Explanation
    ) -> dict[str, Any]:
        decision = explanation.decision
        return {
            "principal": subject.name,
            "dataset": request.dataset,
            "action": request.action,
            "allowed": decision.allowed,
            "reasons": list(decision.reasons),
            "policy_version": self.policy_version(),
            "engines": {
                "casbin": {
                    "allowed": explanation.casbin_allowed,
                    "matched": list(explanation.casbin_lines),
                },
                "rego": {
                    "allowed": explanation.rego_allowed,
                    "reasons": list(explanation.rego_reasons),
                    "obligations": explanation.rego_obligations,
                },
            },
            "obligations": _obligations(decision.obligations),
        }


def _obligations(obligations: Obligations | None) -> dict[str, Any] | None:
    if obligations is None:
        return None
    return {
        "profile": obligations.profile,
        "grant_id": obligations.grant_id,
        "columns": list(obligations.columns) if obligations.columns else None,
        "row_cap": obligations.row_cap,
        "purpose": obligations.purpose,
        "row_filters": len(obligations.row_filters),
    }
