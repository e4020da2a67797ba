"""``kiteline query`` and ``kiteline login``: governed reads from the shell, built on
kiteline-client.

The extract is written as it arrives (Parquet, CSV or Arrow IPC), one page in memory
at a time. A progress bar (rows, bytes, rate) is drawn on a terminal only. Exit codes
let scripts tell outcomes apart (see EXIT_CODES)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import click
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from kiteline_client import (
    AccessDenied,
    BudgetExhausted,
    Client,
    Conflict,
    InvalidRequest,
    KitelineError,
    NotFound,
    Profile,
    ProfileError,
    ReadInfo,
    TransportFailed,
    Unauthenticated,
    Unavailable,
    load_profile,
    save_profile,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # click's own code for a bad command line; also a query the gateway rejects
EXIT_REFUSED = 3  # 401, 403, 409, 429: not allowed, not now, or not within budget
EXIT_NOT_FOUND = 4
EXIT_UNAVAILABLE = 5  # 503 or no answer at all

FORMATS = ("parquet", "csv", "arrow")
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".arrow": "arrow"}
_SUFFIXES[".arrows"] = "arrow"


def exit_code(error: KitelineError) -> int:
    if isinstance(error, AccessDenied | Conflict | BudgetExhausted | Unauthenticated):
        return EXIT_REFUSED
    if isinstance(error, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(error, Unavailable | TransportFailed):
        return EXIT_UNAVAILABLE
    if isinstance(error, InvalidRequest | ProfileError):
        return EXIT_USAGE
    return EXIT_ERROR


def connect() -> Client:
    """``KITELINE_URL`` and ``KITELINE_TOKEN`` when set, else the profile file."""
    token = os.environ.get("KITELINE_TOKEN")
    if token:
        return Client(os.environ.get("KITELINE_URL", "http://127.0.0.1:8787"), token)
    return Client.from_profile()


class _Sink:
    """Writes record batches to a file (or stdout) as one Parquet, CSV or Arrow stream."""

    def __init__(self, out: IO[bytes], fmt: str) -> None:
        self.out = out
        self.fmt = fmt
        self.writer: Any = None

    def write(self, batch: pa.RecordBatch) -> None:
        if self.writer is None:
            self.writer = self._open(batch.schema)
        self.writer.write_batch(batch)

    def _open(self, schema: pa.Schema) -> Any:
        if self.fmt == "parquet":
            return pq.ParquetWriter(self.out, schema)
        if self.fmt == "csv":
            return pacsv.CSVWriter(self.out, schema)
        return ipc.new_stream(self.out, schema)

    def close(self, schema: pa.Schema | None) -> None:
        if self.writer is None and schema is not None:
            self.writer = self._open(schema)  # an empty extract still has its columns
        if self.writer is not None:
            self.writer.close()


@contextmanager
def _progress(enabled: bool, info: ReadInfo) -> Iterator[Any]:
    if not enabled:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import (
        DownloadColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
        task = bar.add_task("query", total=None, rows=0)
        yield lambda: bar.update(task, completed=info.bytes, rows=info.rows)


def _format_of(output: str, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    if output == "-":
        return "csv"
    suffix = Path(output).suffix.lower()
    if suffix not in _SUFFIXES:
        raise click.UsageError(f"cannot tell the format of {output!r}; pass --format")
    return _SUFFIXES[suffix]


def _filters(where: tuple[str, ...]) -> list[dict[str, Any]]:
    conditions = []
    for text in where:
        try:
            condition = json.loads(text)
        except ValueError:
            raise click.UsageError(f"--where takes a JSON condition, not {text!r}") from None
        if not isinstance(condition, dict):
            raise click.UsageError('--where takes {"column": ..., "op": ..., "value": ...}')
        conditions.append(condition)
    return conditions


@click.command("query")
@click.argument("dataset")
@click.option("-o", "--output", default="-", show_default=True, help="File, or - for stdout.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Default: from the suffix.")
@click.option("--columns", help="Comma-separated columns (default: all you may see).")
@click.option(
    "--where",
    multiple=True,
    help='A JSON condition, e.g. {"column":"modality","op":"=","value":"CT"}.',
)
@click.option("--order-by", "order_by", multiple=True, help="Column, or -column for descending.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many rows in all.")
@click.option("--purpose", help="The purpose your grant names.")
@click.option("--profile", "access_profile", help="Ask for a lower access profile.")
@click.option("--page-rows", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def query_command(
    dataset: str,
    output: str,
    fmt: str | None,
    columns: str | None,
    where: tuple[str, ...],
    order_by: tuple[str, ...],
    limit: int | None,
    purpose: str | None,
    access_profile: str | None,
    page_rows: int,
    as_json: bool,
) -> None:
    """Read DATASET under your grant and write the whole extract to a file or stdout.

    Exit codes: 0 done, 2 usage or a rejected query, 3 refused (401/403/409/429),
    4 not found, 5 unavailable, 1 anything else."""
    fmt = _format_of(output, fmt)
    info = ReadInfo()
    try:
        client = connect()
    except KitelineError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(exit_code(exc)) from None
    client.page_rows = page_rows
    read = {
        "columns": columns.split(",") if columns else None,
        "filters": _filters(where),
        "order_by": list(order_by),
        "limit": limit,
        "purpose": purpose,
        "profile": access_profile,
    }
    _write_extract(client, dataset, read, output, fmt, info)
    summary = {"dataset": dataset, "output": output, "format": fmt, **info.to_json()}
    # With the extract on stdout, the summary goes to stderr.
    echo_to_stderr = output == "-"
    if as_json:
        click.echo(json.dumps(summary), err=echo_to_stderr)
    else:
        click.echo(
            f"{info.rows:,} rows of {dataset} ({info.profile}) in {info.pages} page(s) "
            f"to {output}; audit events {', '.join(map(str, info.audit_seqs)) or '-'}",
            err=echo_to_stderr,
        )


def _write_extract(
    client: Client, dataset: str, read: dict[str, Any], output: str, fmt: str, info: ReadInfo
) -> None:
    """Page through the read into ``output``; a failed read leaves no file behind."""
    to_stdout = output == "-"
    out: IO[bytes] = sys.stdout.buffer if to_stdout else open(output, "wb")  # noqa: SIM115
    sink = _Sink(out, fmt)
    try:
        with client, _progress(sys.stderr.isatty() and not to_stdout, info) as tick:
            for batch in client.iter_pages(dataset, **read, info=info):
                sink.write(batch)
                tick()
        sink.close(info.schema)
    except KitelineError as exc:
        if not to_stdout:
            out.close()
            Path(output).unlink(missing_ok=True)  # never leave half an extract behind
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(exit_code(exc)) from None
    finally:
        if not to_stdout:
            out.close()
        else:
            out.flush()


@click.command("login")
@click.option("--url", required=True, help="The gateway's address.")
@click.option("--token-env", help="Keep only a reference: read the token from this variable.")
@click.option("--token-file", type=click.Path(path_type=Path), help="Or from this file.")
@click.option("--profile-file", type=click.Path(path_type=Path), help="Default: see docs.")
@click.option("--json", "as_json", is_flag=True)
def login_command(
    url: str,
    token_env: str | None,
    token_file: Path | None,
    profile_file: Path | None,
    as_json: bool,
) -> None:
    """Check a token against the gateway and save a profile file (mode 0600).

    Without --token-env or --token-file the token is asked for (never taken as a flag,
    which would land in the shell's history) and kept in the profile itself."""
    if token_env and token_file:
        raise click.UsageError("give --token-env or --token-file, not both")
    if token_env:
        reference = f"env:{token_env}"
    elif token_file:
        reference = f"file:{token_file.expanduser().resolve()}"
    else:
        reference = click.prompt("API token", hide_input=True)
    profile = Profile(url=url, token=reference)
    try:
        with Client(url, profile.resolve_token()) as client:
            me = client.me()
    except KitelineError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(exit_code(exc)) from None
    where = save_profile(profile, profile_file)
    load_profile(where)  # refuse now, not at the next command, if it is not private
    if as_json:
        click.echo(json.dumps({"profile": str(where), "name": me["name"], "kind": me["kind"]}))
    else:
        click.echo(f"logged in as {me['name']} ({me['kind']}); profile saved to {where}")


def register(cli: click.Group) -> None:
    cli.add_command(query_command)
    cli.add_command(login_command)
