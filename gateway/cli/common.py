"""What every ``kiteline`` command shares: its settings, configuration, state engine, failure."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from gateway.config import Config, ConfigError, Settings, load_config


def settings_of(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


def config_of(ctx: click.Context) -> Config:
    try:
        return load_config(settings_of(ctx).config)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(2) from exc


def state_engine(config: Config) -> Any:
    from gateway.state.database import create_state_engine, migrate

    engine = create_state_engine(config.state_url)
    migrate(engine)
    return engine


def fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


F = TypeVar("F", bound=Callable[..., Any])


def json_option(command: F) -> F:
    """``--json``: the command prints its result as one JSON document, for scripts."""
    option = click.option(
        "--json", "as_json", is_flag=True, help="Print the result as one JSON document."
    )
    return option(command)


def grant_scope_options(verb: str) -> Callable[[F], F]:
    """``--dataset`` or ``--module``, ``--profile`` and ``--purpose``: what a grant
    covers, given to the commands that ``verb`` one (Grant, Request)."""

    def apply(command: F) -> F:
        options = (
            click.option("--dataset", default=None),
            click.option("--module", default=None, help=f"{verb} a whole module."),
            click.option(
                "--profile",
                required=True,
                type=click.Choice(["raw", "pseudonymized", "anonymized", "aggregate"]),
            ),
            click.option("--purpose", default=None),
        )
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def emit(result: Any, as_json: bool, text: str | Callable[[], None]) -> None:
    """Print a command's result: as JSON with ``--json``, else as ``text`` for a reader
    (a line, or a function that prints several)."""
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, default=str))
    elif callable(text):
        text()
    else:
        click.echo(text)
