"""Every refusal or failure of a request is recorded before it reaches the client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from audit import AuditError
from gateway.access.principals import Caller
from gateway.auditing.log import AuditLog, RequestMeta
from gateway.config import Config
from gateway.errors import AccessDenied, Unavailable, as_gateway_error, is_failure
from policies import PolicyError

T = TypeVar("T")


class Outcomes:
    def __init__(self, audit: AuditLog, config: Config) -> None:
        self.audit = audit
        self.config = config

    def audited(
        self,
        run: Callable[[], T],
        *,
        caller: Caller,
        meta: RequestMeta,
        dataset: str | None,
        action: str,
        details: Callable[[], dict[str, Any]] | None = None,
    ) -> T:
        """Run ``run()``; record any refusal or failure before it reaches the client."""
        try:
            return run()
        except Exception as exc:
            error = as_gateway_error(exc)
            if isinstance(exc, AuditError):
                raise error from exc
            self._record(exc, caller, meta, dataset, action, details)
            if error is exc:
                raise
            raise error from exc

    def _record(
        self,
        exc: Exception,
        caller: Caller,
        meta: RequestMeta,
        dataset: str | None,
        action: str,
        details: Callable[[], dict[str, Any]] | None,
    ) -> None:
        error = as_gateway_error(exc)
        if isinstance(error, AccessDenied) or isinstance(exc, PolicyError):
            # A policy engine that cannot answer is a denial (fail closed).
            kind, decision = "data.denied", "deny"
        elif not is_failure(error):
            kind, decision = "request.rejected", "reject"
        else:
            kind, decision = "request.failed", "error"
        datasets = self.config.datasets
        module = datasets[dataset].module if dataset in datasets else None
        try:
            self.audit.append(
                kind,
                meta=meta,
                caller=caller,
                dataset=dataset,
                module=module,
                decision=decision,
                reasons=[error.detail],
                attempted=action,
                status=self.audit.status_of(error),
                rule=error.extensions.get("rule"),
                **(details() if details else {}),
            )
        except AuditError as audit_exc:
            raise Unavailable("the audit log could not record this request") from audit_exc
