"""Commands for platform admins: principals, API keys, budgets, grants outside the
workflow, and offboarding.

The acts on this host's state database are audited as the operator's
(``operator_session``); offboarding, suspension and reinstatement go through the API.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import click

from gateway.cli.common import config_of, emit, fail, grant_scope_options, json_option, state_engine
from gateway.cli.grants import grants
from gateway.cli.operator import ADMINS, OFFICERS, operator_session
from gateway.cli.remote import call


@click.group()
def principals() -> None:
    """Manage principals."""


@principals.command("add")
@click.argument("name")
@click.option(
    "--kind",
    required=True,
    type=click.Choice(["employee", "alumni", "partner", "officer", "admin", "service"]),
)
@click.option("--org", default=None, help="Partner org (required for partners).")
@click.option("--department", default=None)
@click.option("--org-admin", is_flag=True, help="A partner who may request grants for the org.")
@json_option
@click.pass_context
def principals_add(
    ctx: click.Context,
    name: str,
    kind: str,
    org: str | None,
    department: str | None,
    org_admin: bool,
    as_json: bool,
) -> None:
    """Add a principal (admins; without a token, only the first admin)."""
    from gateway.access.principals import PrincipalError, add_principal

    _config, engine, operator = operator_session(
        ctx, "principals add", ADMINS, allow_bootstrap=kind == "admin"
    )
    try:
        add_principal(
            engine, name=name, kind=kind, org=org, department=department, org_admin=org_admin
        )
    except PrincipalError as exc:
        fail(str(exc), 2)
    added = {"kind": kind, "org": org, "department": department, "org_admin": org_admin}
    operator.record("principal.added", decision="allow", principal=name, **added)
    emit({"name": name, **added}, as_json, f"added {kind} {name}")


@principals.command("list")
@json_option
@click.pass_context
def principals_list(ctx: click.Context, as_json: bool) -> None:
    """Every principal (admins, officers)."""
    from sqlalchemy import select

    from gateway.state.models import Principal

    _config, engine, operator = operator_session(ctx, "principals list", ADMINS | OFFICERS)
    operator.record("principals.list", decision="allow")
    with engine.connect() as conn:
        rows = conn.execute(
            select(Principal.name, Principal.kind, Principal.status, Principal.org).order_by(
                Principal.name
            )
        ).all()
    lines = [f"{'NAME':<16}{'KIND':<10}{'STATUS':<11}ORG"]
    lines += [f"{name:<16}{kind:<10}{status:<11}{org or '-'}" for name, kind, status, org in rows]
    found = [{"name": n, "kind": k, "status": st, "org": o} for n, k, st, o in rows]
    emit({"principals": found}, as_json, "\n".join(lines))


@click.group()
def keys() -> None:
    """Manage API keys."""


def _lifetime(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    match = re.fullmatch(r"([1-9][0-9]{0,5})([dh])", value.strip())
    if match is None:
        raise click.BadParameter("a number of days or hours, such as 90d or 12h")
    count, unit = int(match[1]), match[2]
    return timedelta(days=count) if unit == "d" else timedelta(hours=count)


@keys.command("issue")
@click.argument("name")
@click.option(
    "--expires",
    callback=_lifetime,
    default=None,
    help="Lifetime of the key, such as 90d or 12h; past it the key is refused "
    "(issue the next key before, then revoke the old one). Default: no expiry.",
)
@json_option
@click.pass_context
def keys_issue(ctx: click.Context, name: str, expires: Any, as_json: bool) -> None:
    """Issue an API key for NAME and print its token once (admins; without a token, only
    the first admin's key)."""
    from sqlalchemy import select

    from gateway.access.principals import PrincipalError, issue_key, now
    from gateway.state.models import Principal

    config = config_of(ctx)
    probe = state_engine(config)
    with probe.connect() as conn:
        kind = conn.scalar(select(Principal.kind).where(Principal.name == name))
    probe.dispose()
    _config, engine, operator = operator_session(
        ctx, "keys issue", ADMINS, allow_bootstrap=kind == "admin"
    )
    try:
        expires_at = now() + expires if expires is not None else None
        key_id, token = issue_key(engine, name, expires_at=expires_at)
    except PrincipalError as exc:
        fail(str(exc), 2)
    # The key id is public by design; the token never reaches the log.
    operator.record("key.issued", decision="allow", principal=name, key_id=key_id)
    issued = {"principal": name, "key_id": key_id, "token": token, "expires_at": expires_at}
    emit(issued, as_json, token)
    click.echo("store this token now: only its hash is kept", err=True)


@keys.command("revoke")
@click.argument("key_id")
@json_option
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str, as_json: bool) -> None:
    """Revoke an API key (admins)."""
    from gateway.access.principals import PrincipalError, revoke_key

    _config, engine, operator = operator_session(ctx, "keys revoke", ADMINS)
    try:
        revoke_key(engine, key_id)
    except PrincipalError as exc:
        fail(str(exc), 2)
    operator.record("key.revoked", decision="allow", key_id=key_id)
    emit({"key_id": key_id, "revoked": True}, as_json, f"revoked key {key_id}")


@keys.command("rotate")
@json_option
@click.pass_context
def keys_rotate(ctx: click.Context, as_json: bool) -> None:
    """Start a new pseudonym key version; older versions stay for tracing (admins)."""
    from gateway.access.key_versions import rotate

    _config, engine, operator = operator_session(ctx, "keys rotate", ADMINS)
    version = rotate(engine, created_by=operator.name)
    operator.record("pseudonym_key.rotated", decision="allow", version=version)
    emit(
        {"version": version},
        as_json,
        f"pseudonym key version {version} is current; pseudonyms change from now on",
    )


@click.group()
def budgets() -> None:
    """Egress and privacy budgets per grant."""


@budgets.command("set")
@click.argument("grant_id", type=int)
@click.option("--rows-per-request", type=click.IntRange(min=1), default=None)
@click.option("--rows-per-day", type=click.IntRange(min=1), default=None)
@click.option("--rows-total", type=click.IntRange(min=1), default=None)
@click.option("--epsilon", type=click.FloatRange(min=0, min_open=True), default=None)
@json_option
@click.pass_context
def budgets_set(
    ctx: click.Context,
    grant_id: int,
    rows_per_request: int | None,
    rows_per_day: int | None,
    rows_total: int | None,
    epsilon: float | None,
    as_json: bool,
) -> None:
    """Override the configured budgets of one grant (admins)."""
    from sqlalchemy import select

    from gateway.access.budgets import set_limits
    from gateway.state.models import Grant

    _config, engine, operator = operator_session(ctx, "budgets set", ADMINS)
    with engine.connect() as conn:
        if conn.scalar(select(Grant.id).where(Grant.id == grant_id)) is None:
            fail(f"no grant {grant_id}", 2)
    limits: dict[str, Any] = {"rows_per_request": rows_per_request, "rows_per_day": rows_per_day}
    limits |= {"rows_total": rows_total, "epsilon": epsilon}
    set_limits(
        engine,
        grant_id,
        rows_per_request=rows_per_request,
        rows_per_day=rows_per_day,
        rows_total=rows_total,
        epsilon=epsilon,
    )
    operator.record("budget.set", decision="allow", grant_id=grant_id, **limits)
    emit({"grant": grant_id, **limits}, as_json, f"budgets of grant {grant_id} updated")


@budgets.command("show")
@click.argument("grant_id", type=int)
@json_option
@click.pass_context
def budgets_show(ctx: click.Context, grant_id: int, as_json: bool) -> None:
    """What remains of one grant's budgets (admins, officers)."""
    from gateway.access import budgets as ledger

    config, engine, operator = operator_session(ctx, "budgets show", ADMINS | OFFICERS)
    operator.record("budget.shown", decision="allow", grant_id=grant_id)
    limits = ledger.limits_for(engine, config, grant_id)
    charges = ledger.row_charges(grant_id, limits, 0, ledger.today())
    charges += ledger.epsilon_charges(config, grant_id, limits, None, 0)
    left = ledger.remaining(engine, charges)
    result = {"grant": grant_id, "remaining": left}
    # JSON either way: the remaining budgets are read by scripts more than by people.
    emit(result, as_json, json.dumps(result))


@grants.command("add")
@click.option("--principal", "principal", default=None, help="Grant to this principal ...")
@click.option("--org", default=None, help="... or to every member of this partner org.")
@grant_scope_options("Grant")
@click.option("--days", type=int, default=90, show_default=True)
@click.option("--approvals", type=int, default=1, show_default=True)
@click.option("--row-cap", type=int, default=None)
@click.option("--reason", required=True, help="Why this grant skips the approval workflow.")
@json_option
@click.pass_context
def grants_add(
    ctx: click.Context,
    principal: str | None,
    org: str | None,
    dataset: str | None,
    module: str | None,
    profile: str,
    purpose: str | None,
    days: int,
    approvals: int,
    row_cap: int | None,
    reason: str,
    as_json: bool,
) -> None:
    """Add an active grant without the approval workflow: an audited admin act that
    names its reason. Everyone else requests grants (`grants request`)."""
    from gateway.access.grants import GrantError, add_grant

    if (principal is None) == (org is None):
        fail("give exactly one of --principal or --org", 2)
    if not reason.strip():
        fail("--reason must say why", 2)
    config, engine, operator = operator_session(ctx, "grants add", ADMINS)
    try:
        grant_id = add_grant(
            engine,
            config,
            subject_type="principal" if principal else "org",
            subject=principal or org or "",
            dataset=dataset,
            module=module,
            profile=profile,
            purpose=purpose,
            days=days,
            approvals=approvals,
            row_cap=row_cap,
            created_by=operator.name,
        )
    except GrantError as exc:
        fail(str(exc), 2)
    operator.record(
        "grant.added",
        decision="allow",
        reasons=[reason],
        grant_id=grant_id,
        subject=f"user:{principal}" if principal else f"org:{org}",
        dataset=dataset,
        module=module or config.datasets[dataset or ""].module,
        profile=profile,
        purpose=purpose,
        days=days,
        row_cap=row_cap,
    )
    emit({"id": grant_id, "status": "active"}, as_json, f"grant {grant_id} active")


# -- principals ---------------------------------------------------------------------


@principals.command("offboard")
@click.argument("name")
@click.option("--reason", default="left the company", show_default=True)
@json_option
def principals_offboard(name: str, reason: str, as_json: bool) -> None:
    """Turn an employee into alumni: revoke raw/pseudonymized grants, keys, custodianships."""
    result = call("POST", f"/v1/principals/{name}/offboard", {"reason": reason})
    emit(result, as_json, lambda: _offboarded(result))


def _offboarded(result: dict[str, Any]) -> None:
    click.echo(f"{result['principal']} is now alumni")
    for key in (
        "grants_revoked",
        "grants_downgraded",
        "requests_denied",
        "custodianships_removed",
        "keys_revoked",
        "reads_cancelled",
    ):
        value = result[key]
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        click.echo(f"  {key.replace('_', ' ')}: {shown or '-'}")
    for module, left in result["modules_below_two_custodians"].items():
        click.echo(
            f"  WARNING: module {module} has {len(left)} custodian(s) left: "
            f"{', '.join(left) or 'none'}"
        )


def status_command(verb: str) -> None:
    @principals.command(verb, help=f"{verb.capitalize()} a principal, or with --org an org.")
    @click.argument("name")
    @click.option("--org", "is_org", is_flag=True, help="NAME is a partner org.")
    @click.option("--reason", required=True)
    @json_option
    def command(name: str, is_org: bool, reason: str, as_json: bool) -> None:
        path = f"/v1/{'orgs' if is_org else 'principals'}/{name}/{verb}"
        result = call("POST", path, {"reason": reason})
        who = result.get("org") or result.get("principal")
        emit(result, as_json, f"{who} is {result['status']}")


status_command("suspend")
status_command("reinstate")
