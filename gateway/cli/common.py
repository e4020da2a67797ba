"""What every ``kiteline`` command shares: its settings, configuration, state engine, failure."""

from __future__ import annotations

from typing import Any

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
