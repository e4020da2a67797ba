"""Commands for security officers beyond the audit log's own: leak tracing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import click

from gateway.cli.common import config_of, emit, fail, json_option
from gateway.cli.operator import OFFICERS, authenticate_operator


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@click.pass_context
def trace(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Name the recipient whose pseudonyms appear in a leaked FILE (CSV, Parquet, JSON lines).

    Officers, with their key in KITELINE_TOKEN; the trace is audited as theirs.
    Exits 0 when the extract is attributed, 1 when it is not."""
    from gateway.auditing.log import RequestMeta
    from gateway.errors import GatewayError
    from gateway.http.problems import status_of
    from gateway.service import Gateway

    gateway = Gateway.from_config(config_of(ctx))
    # A refused trace is recorded with the status the API would answer it with.
    gateway.audit.status_of = status_of
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
    # JSON either way: indented for a reader, one line with --json.
    emit(report, as_json, json.dumps(report, ensure_ascii=False, indent=2))
    if not report["attributed"]:
        raise SystemExit(1)
