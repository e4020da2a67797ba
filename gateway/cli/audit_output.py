"""How ``kiteline audit`` commands report: a progress bar on stderr only when stderr is
a terminal, and results through the CLI's one ``emit`` (a line, or JSON with
``--json``), failures on stderr."""

from __future__ import annotations

import sys
from typing import Any

import click

from gateway.cli.common import emit


class Quiet:
    """A progress bar that shows nothing (output is not a terminal)."""

    def __enter__(self) -> Quiet:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def update(self, _steps: int) -> None:
        return None


def progress(length: int, label: str) -> Any:
    # Bars only on a terminal: scripts and pipes get clean output.
    if sys.stderr.isatty():
        return click.progressbar(length=max(length, 1), label=label, file=sys.stderr)
    return Quiet()


def report(as_json: bool, result: dict[str, Any], text: str, *, err: bool = False) -> None:
    """``result`` as JSON on stdout with ``--json``; else ``text``, on stderr for a failure."""
    if err and not as_json:
        click.echo(text, err=True)
    else:
        emit(result, as_json, text)
