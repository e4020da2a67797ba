"""Commands for whoever runs the gateway's host: set up, check, serve, and the demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from gateway import observability
from gateway.cli.common import config_of, emit, fail, json_option, settings_of, state_engine
from gateway.config import Settings


@click.command()
@json_option
@click.pass_context
def init(ctx: click.Context, as_json: bool) -> None:
    """Create the master key (if missing) and migrate the state database."""
    from gateway.access.keyring import create_master_key

    config = config_of(ctx)
    reference = config.gateway.master_key
    lines, created = [], None
    if reference.startswith("file:"):
        path = config.resolve_path(reference[len("file:") :])
        if not path.exists():
            create_master_key(path)
            created = str(path)
            lines.append(f"created master key {path} (mode 0600)")
    state_engine(config).dispose()
    lines.append("state database is up to date")
    emit({"master_key_created": created, "state": "up to date"}, as_json, "\n".join(lines))


@click.command()
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
    if config.flight.enabled:
        if workers != 1:
            fail(
                "flight.enabled serves Arrow Flight from one process: run kiteline serve "
                "with --workers 1, or turn flight off",
                2,
            )
        _serve_with_flight(settings, config, listen)
        return
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


def _serve_with_flight(settings: Settings, config: Any, listen: dict[str, Any]) -> None:
    """uvicorn and the Flight endpoint in one process, on one Gateway."""
    import uvicorn

    from gateway.flight import start_flight
    from gateway.http.app import create_app
    from gateway.service import Gateway

    gateway = Gateway.from_config(config)
    try:
        app = create_app(settings, config=config, gateway=gateway)
        endpoint = start_flight(gateway, config.flight)
        try:
            uvicorn.run(app, **listen)
        finally:
            endpoint.stop()
    finally:
        gateway.close()


@click.command()
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
  curl -s -H "Authorization: Bearer {token}" -H "Content-Type: application/json" \\
       -X POST {url}/v1/datasets/patients/query -d '{body}'
  curl -s -H "Authorization: Bearer {token}" -H "Content-Type: application/json" \\
       -X POST {url}/v1/datasets/patients/query -d '{denied}'
  KITELINE_TOKEN=$(jq -r .victor {tokens}) kiteline --config {config_path} audit verify
""")


@click.command()
@json_option
@click.pass_context
def check(ctx: click.Context, as_json: bool) -> None:
    """Validate kiteline.yaml and the stores behind it; print every problem."""
    from gateway.read.catalog_check import check_stores

    config = config_of(ctx)
    observability.ensure_available(config.tracing)
    problems = check_stores(config)
    result = {
        "config": str(settings_of(ctx).config),
        "ok": not problems,
        "problems": problems,
        "datasets": len(config.datasets),
        "modules": len(config.modules),
        "stores": len(config.stores),
    }
    if problems and not as_json:
        for problem in problems:
            click.echo(problem, err=True)
        raise SystemExit(2)
    emit(
        result,
        as_json,
        f"{settings_of(ctx).config}: ok ({len(config.datasets)} datasets, "
        f"{len(config.modules)} modules, {len(config.stores)} stores)",
    )
    if problems:
        raise SystemExit(2)
