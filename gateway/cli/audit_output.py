"""How ``kiteline audit`` commands report: a line for people, or one JSON object with
``--json``, and a progress bar on stderr only when stderr is a terminal."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

JSON_HELP = "Print the result as one JSON object (for scripts)."


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
    """``text`` for people, or ``result`` as one JSON line on stdout with ``--json``."""
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
    else:
        click.echo(text, err=err)
