"""How ``kiteline audit`` commands report: a progress bar on stderr only when stderr is
a terminal, results through the CLI's one ``emit`` (a line, or JSON with ``--json``),
failures on stderr, and events one a line with every control character a client may have
sent shown escaped."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
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


def inert(value: Any) -> str:
    """Text with control characters escaped, so nothing a client sent can drive the terminal."""
    text = "" if value is None else str(value)
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def event_line(event: dict[str, Any]) -> str:
    who = inert(event.get("actor") or "-")
    if event.get("actor_org"):
        who += f"@{inert(event['actor_org'])}"
    parts = [
        f"{event.get('seq', '?'):>7}",
        inert(str(event.get("ts", ""))[:19]),
        f"{who:<16}",
        f"{inert(event.get('action')):<18}",
        f"{inert(event.get('dataset') or '-'):<12}",
        f"{inert(event.get('decision') or '-'):<6}",
    ]
    if "rows" in event:
        parts.append(f"rows={event['rows']}")
    reasons = event.get("reasons") or []
    if reasons:
        parts.append(inert("; ".join(str(r) for r in reasons))[:160])
    return " ".join(parts)


def alert_line(event: dict[str, Any]) -> str:
    return (
        f"{event['seq']:>7} {inert(event['ts'][:19])} {inert(event.get('severity')):<8} "
        f"{inert(event.get('rule')):<22} {inert('; '.join(event.get('reasons') or []))}"
    )


def emit_events(
    events: list[dict[str, Any]],
    as_json: bool,
    line: Callable[[dict[str, Any]], str] = event_line,
) -> None:
    """One event a line: as ``line`` writes it, or as JSON with ``--json``."""
    for event in events:
        if as_json:
            # JSON escapes every control character: one event, one line, always.
            click.echo(json.dumps(event, ensure_ascii=False))
        else:
            click.echo(line(event))
