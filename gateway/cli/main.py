"""The ``kiteline`` command. The only place, with ``app_from_environment``, that configures
logging (see ``gateway.logs``)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from gateway.cli.admin import budgets, keys, principals
from gateway.cli.audit import audit as audit_commands
from gateway.cli.grants import access, grants
from gateway.cli.host import check, demo, init, serve
from gateway.cli.officer import trace
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


for command in (
    init,
    serve,
    demo,
    check,
    principals,
    keys,
    budgets,
    trace,
    grants,
    access,
    audit_commands,
    policy,
    explain,
):
    cli.add_command(command)
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
