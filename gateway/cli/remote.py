"""The CLI's client of a running gateway (``KITELINE_URL``, ``KITELINE_TOKEN``).

Commands that go through the API are authorized and audited exactly as they are for
any other client.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import click
import httpx

DEFAULT_URL = "http://127.0.0.1:8787"


def http_client() -> httpx.Client:
    """The API client; the token comes from the environment, never from a flag (shell history)."""
    token = os.environ.get("KITELINE_TOKEN")
    if not token:
        raise click.UsageError("set KITELINE_TOKEN to your kiteline API token")
    return httpx.Client(
        base_url=os.environ.get("KITELINE_URL", DEFAULT_URL),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    try:
        with http_client() as client:
            response = client.request(method, path, json=body)
    except httpx.TransportError as exc:
        click.echo(f"error: cannot reach the gateway: {exc}", err=True)
        raise SystemExit(1) from exc
    if response.status_code >= 400:
        _problem(response)
    return response.json()


def _problem(response: httpx.Response) -> None:
    try:
        problem = response.json()
    except ValueError:
        problem = {"detail": response.text}
    click.echo(f"error {response.status_code}: {problem.get('detail', '')}", err=True)
    if problem.get("rule"):
        click.echo(f"  rule: {problem['rule']}", err=True)
    if problem.get("conflicting_grant"):
        click.echo(f"  conflicting grant: {problem['conflicting_grant']}", err=True)
    for error in problem.get("errors") or []:
        click.echo(f"  {error.get('field')}: {error.get('message')}", err=True)
    raise SystemExit(2 if response.status_code < 500 else 1)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, list):
            return ",".join(str(v) for v in value) or "-"
        text = str(value)
        # Timestamps: the date and minute are what a reader scans for.
        if len(text) > 19 and text[10:11] == "T":
            return text[:16].replace("T", " ")
        return text

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)
