"""The operator behind a local ``kiteline`` command: authenticated by a key, audited as it.

Commands that change state or read the audit log on the gateway host (they must work
while the gateway is stopped) take the operator's API key from ``KITELINE_TOKEN``, never
from a flag (shell history). The key is checked against the state database exactly as
the API checks it, the principal's kind must hold the command's role, and the act is
recorded as one audit event naming that principal, with ``channel: cli``. A refused
token or role is audited too.

Bootstrap is the one exception: while no active admin holds an active key, the first
admin may be added and given a key without a token. Those events name the actor
``bootstrap``.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import click
from sqlalchemy import Engine, select

from gateway.access.principals import Caller, authenticate, key_id_of
from gateway.auditing.log import AuditLog
from gateway.config import Config
from gateway.state.models import ApiKey, Principal

ADMINS = frozenset({"admin"})
OFFICERS = frozenset({"officer"})
BOOTSTRAP = "bootstrap"
EXIT_REFUSED = 2


@dataclass(frozen=True)
class Operator:
    """Who runs this command (None while bootstrapping) and the log that records it."""

    caller: Caller | None
    audit: AuditLog

    @property
    def name(self) -> str:
        return self.caller.name if self.caller else BOOTSTRAP

    def record(self, action: str, **fields: Any) -> int:
        """One audit event for the act; an audit log that cannot record it fails the
        command (the change, if any, is already committed and the error says so)."""
        from audit import AuditError

        try:
            return self.audit.append(
                action,
                caller=self.caller,
                actor=None if self.caller else BOOTSTRAP,
                channel="cli",
                **fields,
            )
        except AuditError as exc:
            click.echo(f"error: the audit log could not record {action}: {exc}", err=True)
            raise SystemExit(1) from exc


def open_audit_log(ctx: click.Context, config: Config, engine: Engine) -> AuditLog:
    """The audit log on ``engine``, closed with the command."""
    from audit import Redactor
    from gateway.access.keyring import Keyring
    from gateway.access.policy_files import policy_version

    keyring = Keyring.from_config(config)
    log = AuditLog(engine, Redactor(keyring.audit_redaction_key), policy_version=policy_version())
    ctx.call_on_close(log.close)
    return log


def bootstrapping(engine: Engine) -> bool:
    """True while no active admin holds an active key: the first admin is being set up."""
    with engine.connect() as conn:
        found = conn.scalar(
            select(ApiKey.key_id)
            .join(Principal, Principal.id == ApiKey.principal_id)
            .where(
                Principal.kind == "admin",
                Principal.status == "active",
                ApiKey.revoked_at.is_(None),
            )
            .limit(1)
        )
    return found is None


def authenticate_operator(
    audit: AuditLog, command: str, roles: Collection[str], *, allow_bootstrap: bool = False
) -> Operator:
    """The operator holding ``KITELINE_TOKEN``, if its kind is one of ``roles``; exits 2
    (after auditing the refusal) otherwise."""
    token = os.environ.get("KITELINE_TOKEN", "").strip()
    if not token:
        if allow_bootstrap and bootstrapping(audit.engine):
            return Operator(None, audit)
        _refuse(
            Operator(None, audit),
            "auth.failed",
            command,
            "missing KITELINE_TOKEN",
            "set KITELINE_TOKEN to your kiteline API key",
            actor=None,
        )
    outcome = authenticate(audit.engine, token)
    if isinstance(outcome, str):
        _refuse(
            Operator(None, audit),
            "auth.failed",
            command,
            outcome,
            "the token in KITELINE_TOKEN is invalid, revoked, or its principal is not active",
            actor=None,
            key_id=key_id_of(token),
        )
    assert isinstance(outcome, Caller)
    operator = Operator(outcome, audit)
    if outcome.kind not in roles:
        kinds = " or ".join(sorted(roles))
        _refuse(operator, "cli.denied", command, f"only an {kinds} may run {command!r}")
    return operator


def _refuse(
    operator: Operator,
    action: str,
    command: str,
    reason: str,
    message: str | None = None,
    **fields: Any,
) -> None:
    from audit import AuditError

    try:
        operator.audit.append(
            action,
            caller=operator.caller,
            decision="deny",
            reasons=[reason],
            attempted=command,
            channel="cli",
            **fields,
        )
    except AuditError:
        click.echo("error: the audit log could not record this refusal", err=True)
        raise SystemExit(1) from None
    click.echo(f"error: {message or reason}", err=True)
    raise SystemExit(EXIT_REFUSED)


def operator_session(
    ctx: click.Context, command: str, roles: Collection[str], *, allow_bootstrap: bool = False
) -> tuple[Config, Engine, Operator]:
    """The configuration, state engine and authenticated operator of one command."""
    from gateway.cli.common import config_of, state_engine

    config = config_of(ctx)
    engine = state_engine(config)
    ctx.call_on_close(engine.dispose)
    audit = open_audit_log(ctx, config, engine)
    operator = authenticate_operator(audit, command, roles, allow_bootstrap=allow_bootstrap)
    return config, engine, operator
