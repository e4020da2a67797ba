"""Commands for those who request grants and the custodians who decide on them, over
the API; and who can read what."""

from __future__ import annotations

import json
from typing import Any

import click

from gateway.cli.common import emit, grant_scope_options, json_option
from gateway.cli.remote import call, table


@click.group()
def grants() -> None:
    """Request, approve and manage grants."""


GRANT_COLUMNS = (
    "id",
    "subject",
    "module",
    "dataset",
    "profile",
    "status",
    "approvals",
    "approvals_needed",
    "expires_at",
    "purpose",
)


def _show(grant: dict[str, Any]) -> None:
    for key in (*GRANT_COLUMNS, "requested_by", "created_at", "activated_at", "columns"):
        value = grant.get(key)
        click.echo(f"{key + ':':<18}{'-' if value is None else value}")
    if grant.get("approved_by"):
        names = ", ".join(f"{a['name']} ({a['as']})" for a in grant["approved_by"])
        click.echo(f"{'approved_by:':<18}{names}")
    if "history" in grant:
        click.echo("")
        click.echo(table(grant["history"], ("at", "actor", "action", "reason")))


@grants.command("request")
@grant_scope_options("Request")
@click.option("--days", type=int, required=True)
@click.option("--columns", default=None, help="Comma-separated columns to restrict to.")
@click.option("--row-filter", default=None, help='JSON list, e.g. [{"column":..,"op":..}]')
@click.option("--org", default=None, help="Request for your partner org (org admins).")
@click.option("--break-glass-hours", type=int, default=None)
@json_option
def grants_request(
    dataset: str | None,
    module: str | None,
    profile: str,
    purpose: str | None,
    days: int,
    columns: str | None,
    row_filter: str | None,
    org: str | None,
    break_glass_hours: int | None,
    as_json: bool,
) -> None:
    """Request a grant; custodians of the module approve it."""
    body: dict[str, Any] = {"profile": profile, "days": days}
    for key, value in (
        ("dataset", dataset),
        ("module", module),
        ("purpose", purpose),
        ("org", org),
        ("break_glass_hours", break_glass_hours),
    ):
        if value is not None:
            body[key] = value
    if columns:
        body["columns"] = [c.strip() for c in columns.split(",") if c.strip()]
    if row_filter:
        try:
            body["row_filter"] = json.loads(row_filter)
        except ValueError as exc:
            raise click.BadParameter("must be a JSON list", param_hint="--row-filter") from exc
    grant = call("POST", "/v1/grants", body)
    emit(
        grant,
        as_json,
        f"grant {grant['id']} {grant['status']}: {grant['approvals']}/"
        f"{grant['approvals_needed']} approvals",
    )


@grants.command("list")
@click.option(
    "--status",
    default=None,
    type=click.Choice(["requested", "active", "expired", "revoked", "denied"]),
)
@click.option(
    "--local",
    is_flag=True,
    help="Active grants read from the state database on this host (admins, officers; "
    "works while the gateway is stopped).",
)
@json_option
@click.pass_context
def grants_list(ctx: click.Context, status: str | None, local: bool, as_json: bool) -> None:
    """Grants you may see, over HTTP (or with --local from the state database)."""
    if local:
        local_grants(ctx, as_json)
        return
    path = "/v1/grants" + (f"?status={status}" if status else "")
    result = call("GET", path)
    emit(result, as_json, table(result["grants"], GRANT_COLUMNS))


@grants.command("show")
@click.argument("grant_id", type=int)
@json_option
def grants_show(grant_id: int, as_json: bool) -> None:
    """One grant with its full history."""
    grant = call("GET", f"/v1/grants/{grant_id}")
    emit(grant, as_json, lambda: _show(grant))


def decision(verb: str, path: str, summary: str) -> None:
    @grants.command(verb, help=summary)
    @click.argument("grant_id", type=int)
    @click.option("--reason", required=True)
    @json_option
    def command(grant_id: int, reason: str, as_json: bool) -> None:
        grant = call("POST", f"/v1/grants/{grant_id}/{path}", {"reason": reason})
        emit(
            grant,
            as_json,
            f"grant {grant['id']} {grant['status']}: {grant['approvals']}/"
            f"{grant['approvals_needed']} approvals, expires {grant['expires_at'][:16]}",
        )


decision("approve", "approve", "Approve a pending request (custodians).")
decision("deny", "deny", "Deny a pending request (custodians).")
decision("revoke", "revoke", "Revoke a grant.")
decision("break-glass", "break-glass", "Approve a separation exception (admin, officer).")


@grants.command("sweep")
@json_option
def grants_sweep(as_json: bool) -> None:
    """Expire grants, revoke unused ones, list re-certifications due."""
    result = call("POST", "/v1/grants/sweep")
    lines = [
        f"expired: {', '.join(map(str, result['expired'])) or '-'}",
        f"revoked (unused): {', '.join(map(str, result['revoked_unused'])) or '-'}",
    ]
    for custodian, ids in sorted(result["recertify"].items()):
        lines.append(f"re-certify ({custodian}): {', '.join(map(str, ids))}")
    emit(result, as_json, "\n".join(lines))


@click.command("access")
@click.argument("dataset", required=False)
@click.option("--principal", default=None, help="Everything this principal can read today.")
@json_option
def access(dataset: str | None, principal: str | None, as_json: bool) -> None:
    """Who can read DATASET, as the decision engine answers: per principal and purpose,
    the profile and grant a read would get, or why it is refused. With --principal
    (officers): every dataset that principal holds a grant on."""
    if (dataset is None) == (principal is None):
        raise click.UsageError("name a DATASET or --principal NAME")
    if principal is not None:
        result = call("GET", f"/v1/principals/{principal}/access")
        title = f"principal {result['principal']} ({result['kind']}, {result['status']})"
        heading = "dataset"
    else:
        result = call("GET", f"/v1/datasets/{dataset}/access")
        title = f"dataset {result['dataset']} (module {result['module']})"
        heading = "principal"
    rows = [
        {**e, "answer": e["profile"] if e["allowed"] else "refused: " + e["reasons"][0]}
        for e in result["access"]
    ]
    columns = (heading, "kind", "status", "purpose", "grant_id", "answer", "expires_at")
    emit(result, as_json, f"{title}\n{table(rows, columns)}")


def local_grants(ctx: click.Context, as_json: bool = False) -> None:
    """Active grants straight from the state database (administrators on the host)."""
    from gateway.access.grants import active_grants
    from gateway.cli.operator import ADMINS, OFFICERS, operator_session

    _config, engine, operator = operator_session(ctx, "grants list", ADMINS | OFFICERS)
    operator.record("grants.list", decision="allow", status="active")
    with engine.connect() as conn:
        rows = active_grants(conn)
    if as_json:
        emit({"grants": [g.as_dict() for g in rows]}, True, "")
        return
    click.echo(
        f"{'ID':<5}{'SUBJECT':<16}{'MODULE':<10}{'DATASET':<13}{'PROFILE':<15}"
        f"{'EXPIRES':<12}PURPOSE"
    )
    for g in rows:
        click.echo(
            f"{g.id:<5}{g.subject:<16}{g.module:<10}{g.dataset or '*':<13}"
            f"{g.profile:<15}{g.expires_at.date().isoformat():<12}{g.purpose or '-'}"
        )
