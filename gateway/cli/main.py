"""The ``kiteline`` command. The only place, with ``app_from_environment``, that configures
logging (see ``gateway.logs``)."""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from gateway import observability
from gateway.cli.admin import register as register_http_commands
from gateway.cli.audit import audit as audit_commands
from gateway.cli.common import config_of, fail, settings_of, state_engine
from gateway.cli.operator import ADMINS, OFFICERS, authenticate_operator, operator_session
from gateway.cli.policy import explain, policy
from gateway.cli.query import register as register_query
from gateway.config import ConfigError, Settings
from gateway.logs import configure_logging

log = logging.getLogger(__name__)


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Path of kiteline.yaml (default: $KITELINE_CONFIG or ./kiteline.yaml).",
)
@click.option("--log-level", default=None, help="Operational log level (default INFO).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Operational log lines as text (default) or JSON ($KITELINE_LOG_FORMAT).",
)
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path | None, log_level: str | None, log_format: str | None
) -> None:
    """kiteline: governed, anonymized, audited access to hosted data."""
    overrides: dict[str, Any] = {}
    if config_path is not None:
        overrides["config"] = config_path
    if log_level is not None:
        overrides["log_level"] = log_level
    if log_format is not None:
        overrides["log_format"] = log_format
    settings = Settings(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    ctx.obj = settings


# -- setup and serving -----------------------------------------------------------------


@cli.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the master key (if missing) and migrate the state database."""
    from gateway.access.keyring import create_master_key

    config = config_of(ctx)
    reference = config.gateway.master_key
    if reference.startswith("file:"):
        path = config.resolve_path(reference[len("file:") :])
        if not path.exists():
            create_master_key(path)
            click.echo(f"created master key {path} (mode 0600)")
    state_engine(config).dispose()
    click.echo("state database is up to date")


@cli.command()
@click.option("--host", default=None, help="Override gateway.listen's host.")
@click.option("--port", type=int, default=None, help="Override gateway.listen's port.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Gateway processes sharing the port and the state database (use PostgreSQL "
    "for more than one).",
)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int) -> None:
    """Serve the API."""
    import os
    import tempfile

    import uvicorn

    from gateway.http.app import create_app
    from gateway.http.metrics import MULTIPROCESS_DIR
    from gateway.http.server import uvicorn_options

    settings = settings_of(ctx)
    config = config_of(ctx)
    # Before any worker starts: traces asked for without the otel extra stop the server.
    observability.ensure_available(config.tracing)
    listen: dict[str, Any] = {
        "host": host or config.gateway.host,
        "port": port or config.gateway.port,
        "log_level": settings.log_level.lower(),
        "access_log": False,
        # Logging is configured here (and in each worker), the same for uvicorn's lines.
        "log_config": None,
        # Lends governed streams their socket, so a cut read is reset at once, and
        # bounds the request head.
        **uvicorn_options(),
    }
    if workers == 1:
        uvicorn.run(create_app(settings, config=config), **listen)
        return
    # Each worker process builds its own app from the same settings.
    os.environ["KITELINE_CONFIG"] = str(settings.config.resolve())
    os.environ["KITELINE_LOG_LEVEL"] = settings.log_level
    os.environ["KITELINE_LOG_FORMAT"] = settings.log_format
    os.environ["KITELINE_DEMO"] = "1" if settings.demo else "0"
    # A scrape reaches one worker: each keeps its counts in a file of one folder, which
    # any of them sums (prometheus_client's multiprocess mode). A fresh folder per run,
    # so no count of an earlier run is added in; an operator's own folder is kept.
    with tempfile.TemporaryDirectory(prefix="kiteline-metrics-") as counts:
        os.environ.setdefault(MULTIPROCESS_DIR, counts)
        uvicorn.run(
            "gateway.http.app:app_from_environment",
            factory=True,
            workers=workers,
            **listen,
        )


@cli.command()
@click.option(
    "--workspace",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for the demo's config, data, keys and state "
    "(default: ./.kiteline-demo, or ./.kiteline-demo-s3, -postgres, -spark).",
)
@click.option("--port", type=int, default=8787, show_default=True)
@click.option("--reset", is_flag=True, help="Rebuild the workspace from scratch.")
@click.option("--no-serve", is_flag=True, help="Prepare the workspace and exit.")
@click.option(
    "--store",
    type=click.Choice(["local", "s3", "postgres", "spark"]),
    default="local",
    show_default=True,
    help="Where the demo data lives: local files, a local S3-protocol server or a local "
    "Spark Connect server started for the demo, or the PostgreSQL database named by URL.",
)
@click.option(
    "--pg-schema",
    default="kiteline_demo",
    show_default=True,
    help="With --store postgres: the schema the demo tables are loaded into.",
)
@click.argument("url", required=False, envvar="KITELINE_DEMO_PG_URL")
@click.pass_context
def demo(
    ctx: click.Context,
    workspace: Path | None,
    port: int,
    reset: bool,
    no_serve: bool,
    store: str,
    pg_schema: str,
    url: str | None,
) -> None:
    """Build the Deepview Medical demo workspace and serve it on 127.0.0.1.

    With --store postgres, URL (or $KITELINE_DEMO_PG_URL) names the database.
    """
    from contextlib import ExitStack

    from gateway.demo.hosted_stores import DemoStoreError, postgres_demo, s3_demo
    from gateway.demo.workspace import create_workspace

    if url is not None and store != "postgres":
        fail("a URL is only taken with --store postgres", 2)
    if store == "postgres" and not url:
        fail("--store postgres needs the database URL: kiteline demo --store postgres URL", 2)
    if workspace is None:
        workspace = Path(".kiteline-demo" if store == "local" else f".kiteline-demo-{store}")
    click.echo(f"preparing demo workspace in {workspace} ({store} store) ...")
    with ExitStack() as stack:
        try:
            if store == "s3":
                ws = stack.enter_context(s3_demo(workspace, port=port, reset=reset))
            elif store == "spark":
                from gateway.demo.spark import spark_demo

                ws = stack.enter_context(spark_demo(workspace, port=port, reset=reset))
            elif store == "postgres":
                assert url is not None
                ws = postgres_demo(workspace, url, schema=pg_schema, port=port, reset=reset)
            else:
                ws = create_workspace(workspace, port=port, reset=reset)
        except DemoStoreError as exc:
            fail(str(exc), 2)
        _demo_banner(ws.root, ws.config_path, port, store, officer=ws.tokens["victor"])
        if no_serve:
            if store in ("s3", "spark"):
                click.echo(
                    f"note: the local {store} server stops now; run without --no-serve to use it"
                )
            return
        ctx.obj = Settings(
            config=ws.config_path,
            log_level=settings_of(ctx).log_level,
            log_format=settings_of(ctx).log_format,
            demo=True,
        )
        ctx.invoke(serve)


def _demo_banner(root: Path, config_path: Path, port: int, store: str, *, officer: str) -> None:
    from gateway.demo.workspace import SURGICAL_PURPOSE

    url = f"http://127.0.0.1:{port}"
    tokens = root / "tokens.json"
    token = f"$(jq -r .mei {tokens})"
    body = json.dumps(
        {
            "columns": ["patient_id", "birth_date", "diagnosis"],
            "limit": 5,
            "purpose": SURGICAL_PURPOSE,
        },
        ensure_ascii=False,
    )
    denied = json.dumps(
        {"columns": ["patient_id", "name"], "limit": 5, "purpose": SURGICAL_PURPOSE},
        ensure_ascii=False,
    )
    click.echo(f"""
kiteline demo (Deepview Medical, {store} store) at {url}
  API docs:  {url}/docs
  console:   {url}/console  (sign in as the officer victor with {officer})
  tokens:    {tokens} (mode 0600)

Try:
  curl -s -H "Authorization: Bearer {token}" {url}/v1/datasets
  curl -s -H "Authorization: Bearer {token}" -X POST {url}/v1/datasets/patients/query \\
       -d '{body}'
  curl -s -H "Authorization: Bearer {token}" -X POST {url}/v1/datasets/patients/query \\
       -d '{denied}'
  KITELINE_TOKEN=$(jq -r .victor {tokens}) kiteline --config {config_path} audit verify
""")


@cli.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate kiteline.yaml and the stores behind it; print every problem."""
    from gateway.read.catalog_check import check_stores

    config = config_of(ctx)
    observability.ensure_available(config.tracing)
    problems = check_stores(config)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise SystemExit(2)
    click.echo(
        f"{settings_of(ctx).config}: ok ({len(config.datasets)} datasets, "
        f"{len(config.modules)} modules, {len(config.stores)} stores)"
    )


# -- principals and keys --------------------------------------------------------------


@cli.group()
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
@click.pass_context
def principals_add(
    ctx: click.Context,
    name: str,
    kind: str,
    org: str | None,
    department: str | None,
    org_admin: bool,
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
    operator.record(
        "principal.added",
        decision="allow",
        principal=name,
        kind=kind,
        org=org,
        department=department,
        org_admin=org_admin,
    )
    click.echo(f"added {kind} {name}")


@principals.command("list")
@click.pass_context
def principals_list(ctx: click.Context) -> None:
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
    click.echo(f"{'NAME':<16}{'KIND':<10}{'STATUS':<11}ORG")
    for name, kind, status, org in rows:
        click.echo(f"{name:<16}{kind:<10}{status:<11}{org or '-'}")


@cli.group()
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
@click.pass_context
def keys_issue(ctx: click.Context, name: str, expires: Any) -> None:
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
    click.echo(token)
    click.echo("store this token now: only its hash is kept", err=True)


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke an API key (admins)."""
    from gateway.access.principals import PrincipalError, revoke_key

    _config, engine, operator = operator_session(ctx, "keys revoke", ADMINS)
    try:
        revoke_key(engine, key_id)
    except PrincipalError as exc:
        fail(str(exc), 2)
    operator.record("key.revoked", decision="allow", key_id=key_id)
    click.echo(f"revoked key {key_id}")


@keys.command("rotate")
@click.pass_context
def keys_rotate(ctx: click.Context) -> None:
    """Start a new pseudonym key version; older versions stay for tracing (admins)."""
    from gateway.access.key_versions import rotate

    _config, engine, operator = operator_session(ctx, "keys rotate", ADMINS)
    version = rotate(engine, created_by=operator.name)
    operator.record("pseudonym_key.rotated", decision="allow", version=version)
    click.echo(f"pseudonym key version {version} is current; pseudonyms change from now on")


# -- budgets and leak tracing -----------------------------------------------------------


@cli.group()
def budgets() -> None:
    """Egress and privacy budgets per grant."""


@budgets.command("set")
@click.argument("grant_id", type=int)
@click.option("--rows-per-request", type=click.IntRange(min=1), default=None)
@click.option("--rows-per-day", type=click.IntRange(min=1), default=None)
@click.option("--rows-total", type=click.IntRange(min=1), default=None)
@click.option("--epsilon", type=click.FloatRange(min=0, min_open=True), default=None)
@click.pass_context
def budgets_set(
    ctx: click.Context,
    grant_id: int,
    rows_per_request: int | None,
    rows_per_day: int | None,
    rows_total: int | None,
    epsilon: float | None,
) -> None:
    """Override the configured budgets of one grant (admins)."""
    from sqlalchemy import select

    from gateway.access.budgets import set_limits
    from gateway.state.models import Grant

    _config, engine, operator = operator_session(ctx, "budgets set", ADMINS)
    with engine.connect() as conn:
        if conn.scalar(select(Grant.id).where(Grant.id == grant_id)) is None:
            fail(f"no grant {grant_id}", 2)
    set_limits(
        engine,
        grant_id,
        rows_per_request=rows_per_request,
        rows_per_day=rows_per_day,
        rows_total=rows_total,
        epsilon=epsilon,
    )
    operator.record(
        "budget.set",
        decision="allow",
        grant_id=grant_id,
        rows_per_request=rows_per_request,
        rows_per_day=rows_per_day,
        rows_total=rows_total,
        epsilon=epsilon,
    )
    click.echo(f"budgets of grant {grant_id} updated")


@budgets.command("show")
@click.argument("grant_id", type=int)
@click.pass_context
def budgets_show(ctx: click.Context, grant_id: int) -> None:
    """What remains of one grant's budgets (admins, officers)."""
    from gateway.access import budgets as ledger

    config, engine, operator = operator_session(ctx, "budgets show", ADMINS | OFFICERS)
    operator.record("budget.shown", decision="allow", grant_id=grant_id)
    limits = ledger.limits_for(engine, config, grant_id)
    charges = ledger.row_charges(grant_id, limits, 0, ledger.today())
    charges += ledger.epsilon_charges(config, grant_id, limits, None, 0)
    left = ledger.remaining(engine, charges)
    click.echo(json.dumps({"grant": grant_id, "remaining": left}))


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def trace(ctx: click.Context, file: Path) -> None:
    """Name the recipient whose pseudonyms appear in a leaked FILE (CSV, Parquet, JSON lines).

    Officers, with their key in KITELINE_TOKEN; the trace is audited as theirs.
    Exits 0 when the extract is attributed, 1 when it is not."""
    from gateway.auditing.log import RequestMeta
    from gateway.errors import GatewayError
    from gateway.service import Gateway

    gateway = Gateway.from_config(config_of(ctx))
    try:
        operator = authenticate_operator(gateway.audit, "trace", OFFICERS)
        assert operator.caller is not None
        report = gateway.trace(
            operator.caller,
            file.read_bytes(),
            file.name,
            None,
            RequestMeta(request_id=f"cli-{uuid.uuid4().hex}", client="cli", user_agent="kiteline"),
        )
    except GatewayError as exc:
        fail(exc.detail, 2)
    finally:
        gateway.close()
    click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    if not report["attributed"]:
        raise SystemExit(1)


# -- grants ---------------------------------------------------------------------------


@cli.group()
def grants() -> None:
    """Request, approve and manage grants."""


@grants.command("add")
@click.option("--principal", "principal", default=None, help="Grant to this principal ...")
@click.option("--org", default=None, help="... or to every member of this partner org.")
@click.option("--dataset", default=None)
@click.option("--module", default=None, help="Grant a whole module.")
@click.option(
    "--profile",
    required=True,
    type=click.Choice(["raw", "pseudonymized", "anonymized", "aggregate"]),
)
@click.option("--purpose", default=None)
@click.option("--days", type=int, default=90, show_default=True)
@click.option("--approvals", type=int, default=1, show_default=True)
@click.option("--row-cap", type=int, default=None)
@click.option("--reason", required=True, help="Why this grant skips the approval workflow.")
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
    click.echo(f"grant {grant_id} active")


register_http_commands(cli, grants, principals)


# -- audit ----------------------------------------------------------------------------


cli.add_command(audit_commands)


cli.add_command(policy)
cli.add_command(explain)
register_query(cli)


def main() -> None:  # the console script; `python -m gateway.cli` too
    try:
        cli(prog_name="kiteline")
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
