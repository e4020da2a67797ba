"""``kiteline audit ...``: the officer's commands, on the state database of this host.

Each command authenticates the officer by the key in ``KITELINE_TOKEN`` and records what
it read or did as one audit event naming that officer (see ``gateway.cli.operator``), so
the commands work while the gateway is stopped and are audited all the same.

Output is for people: one line per event, with every control character a client may
have sent shown escaped, never interpreted by the terminal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import orjson

from gateway.cli.audit_output import alert_line, emit_events, progress, report
from gateway.cli.common import json_option
from gateway.cli.operator import ADMINS, OFFICERS, authenticate_operator
from gateway.config import Config, ConfigError, Settings, load_config

# Exit codes of `audit verify` and `audit witness`; the README lists them.
EXIT_OK = 0
EXIT_TAMPERED = 1
EXIT_USAGE = 2
EXIT_TRUNCATED = 3
EXIT_FORKED = 4


def _config(ctx: click.Context) -> Config:
    settings: Settings = ctx.obj
    try:
        return load_config(settings.config)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(EXIT_USAGE) from exc


def _trail(ctx: click.Context, command: str, roles: frozenset[str] = OFFICERS) -> Any:
    """The audit trail of this host and the operator running ``command``."""
    from gateway.auditing.trail import AuditTrail
    from gateway.cli.operator import open_audit_log
    from gateway.state.database import create_state_engine, migrate

    config = _config(ctx)
    engine = create_state_engine(config.state_url)
    ctx.call_on_close(engine.dispose)
    migrate(engine)
    # Closed before the engine is disposed (callbacks run last first): the writer's
    # connection goes back to the pool, which then closes it.
    log = open_audit_log(ctx, config, engine)
    operator = authenticate_operator(log, command, roles)
    return AuditTrail.from_config(config, log), operator


def _filter_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--actor", help="Principal name."),
        click.option("--org", help="Partner org of the actor."),
        click.option("--kind", help="Principal kind (partner, alumni, employee...)."),
        click.option("--dataset"),
        click.option("--module"),
        click.option("--action", help="An action, or a prefix ending in '*' (data.*)."),
        click.option("--decision", help="allow, deny, reject, error, alert."),
        click.option("--since", help="ISO 8601 time or an age: 7d, 24h, 30m."),
        click.option("--until", help="ISO 8601 time or an age."),
        click.option("--request-id", "request_id"),
        click.option("--text", help="Text inside the event (e.g. a reason or an audit hash)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _event_filter(params: dict[str, Any]) -> Any:
    from gateway.auditing.search import FILTER_KEYS, EventFilter
    from gateway.errors import InvalidRequest

    try:
        return EventFilter.parse({k: params.get(k) for k in FILTER_KEYS})
    except InvalidRequest as exc:
        click.echo(f"error: {exc.detail}", err=True)
        raise SystemExit(EXIT_USAGE) from exc


@click.group()
def audit() -> None:
    """Search, export, verify and witness the audit log; list alerts."""


@audit.command("tail")
@click.option("-n", "count", type=int, default=20, show_default=True)
@click.option("-f", "follow", is_flag=True, help="Keep printing new events as they arrive.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@click.pass_context
def tail(ctx: click.Context, count: int, follow: bool, as_json: bool) -> None:
    """Print the newest events."""
    trail, operator = _trail(ctx, "audit tail")
    operator.record("audit.tail", decision="allow", count=count, follow=follow)
    events = [dict(e) for e in trail.audit.tail(count)]
    emit_events(events, as_json)
    last = events[-1]["seq"] if events else 0
    while follow:
        time.sleep(0.5)
        newer = [dict(e) for e in trail.audit.tail(1000) if e["seq"] > last]
        emit_events(newer, as_json)
        if newer:
            last = newer[-1]["seq"]


@audit.command("search")
@_filter_options
@click.option("--limit", type=int, default=100, show_default=True, help="Most events shown.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@click.pass_context
def search_command(ctx: click.Context, limit: int, as_json: bool, **filters: Any) -> None:
    """Events matching every filter given, newest first."""
    from gateway.auditing.search import MAX_PAGE, search, shown_filters

    where = _event_filter(filters)
    trail, operator = _trail(ctx, "audit search")
    operator.record("audit.search", decision="allow", filters=shown_filters(where), limit=limit)
    cursor, shown = None, 0
    while shown < limit:
        events, cursor = search(
            trail.audit.engine, where, limit=min(MAX_PAGE, limit - shown), cursor=cursor
        )
        emit_events(events, as_json)
        shown += len(events)
        if cursor is None:
            break
    click.echo(f"{shown} event(s)", err=True)


@audit.command("alerts")
@click.option("-n", "count", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def alerts_command(ctx: click.Context, count: int, as_json: bool) -> None:
    """Alerts raised by the rules, newest first."""
    from gateway.auditing.search import EventFilter, search

    trail, operator = _trail(ctx, "audit alerts")
    operator.record("audit.alerts", decision="allow", count=count)
    events, _ = search(trail.audit.engine, EventFilter(action="alert.*"), limit=count)
    emit_events(events, as_json, alert_line)
    click.echo(f"{len(events)} alert(s)", err=True)


@audit.command("export")
@_filter_options
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output file.")
@json_option
@click.pass_context
def export_command(ctx: click.Context, fmt: str, out: Path, as_json: bool, **filters: Any) -> None:
    """Write matching events, oldest first, with the checkpoint they are consistent with
    (saved beside the export as OUT.checkpoint)."""
    from gateway.auditing.search import count, csv_header, csv_line, iter_bodies, shown_filters

    where = _event_filter(filters)
    trail, operator = _trail(ctx, "audit export")
    operator.record("audit.export", decision="allow", filters=shown_filters(where), format=fmt)
    stored = trail.checkpointer.covering(trail.audit.head().size)
    size = stored.checkpoint.tree_size
    total = count(trail.audit.engine, where, upto=size)
    written = 0
    with (
        out.open("w", encoding="utf-8", newline="") as handle,
        progress(total, f"exporting {total} events") as bar,
    ):
        if fmt == "csv":
            handle.write(csv_header())
        for body in iter_bodies(trail.audit.engine, where, upto=size):
            handle.write(csv_line(body) if fmt == "csv" else body + "\n")
            written += 1
            if written % 1000 == 0:
                bar.update(1000)
        bar.update(written % 1000)
    checkpoint_file = out.with_name(out.name + ".checkpoint")
    checkpoint_file.write_text(stored.note, encoding="utf-8")
    report(
        as_json,
        {"events": written, "out": str(out), "checkpoint_size": size,
         "checkpoint_file": str(checkpoint_file)},
        f"wrote {written} events to {out}; checkpoint (size {size}) in {checkpoint_file}",
    )  # fmt: skip


@audit.command("checkpoint")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Save the note here.")
@json_option
@click.pass_context
def checkpoint_command(ctx: click.Context, out: Path | None, as_json: bool) -> None:
    """Sign a checkpoint of the log as it is now and print (or save) it."""
    trail, operator = _trail(ctx, "audit checkpoint")
    operator.record("audit.checkpoint", decision="allow")
    stored = trail.checkpointer.checkpoint()
    if stored is None:
        raise SystemExit(EXIT_USAGE)
    size = stored.checkpoint.tree_size
    result = {"size": size, "root": stored.checkpoint.root_hash.hex(), "note": stored.note}
    if out is not None:
        out.write_text(stored.note, encoding="utf-8")
        report(as_json, {**result, "out": str(out)}, f"saved checkpoint of {size} events to {out}")
    elif as_json:
        report(as_json, result, "")
    else:
        click.echo(stored.note, nl=False)


@audit.command("hash")
@click.argument("value")
@click.option("--json", "as_json", is_flag=True, help="Hash VALUE parsed as JSON (e.g. 42).")
@click.pass_context
def hash_command(ctx: click.Context, value: str, as_json: bool) -> None:
    """The keyed hash of VALUE, as filter literals appear in the log (search --text it)."""
    trail, operator = _trail(ctx, "audit hash")
    # The value is never recorded: only that an officer asked for a hash.
    operator.record("audit.hash", decision="allow")
    click.echo(trail.audit.redactor.hash(json.loads(value) if as_json else value))


def _notes(paths: tuple[Path, ...]) -> Iterator[tuple[str, str]]:
    from audit import read_notes

    for path in paths:
        try:
            notes = read_notes(path)
        except (OSError, ValueError) as exc:
            click.echo(f"error: cannot read checkpoint file {path}: {exc}", err=True)
            raise SystemExit(EXIT_USAGE) from exc
        for index, note in enumerate(notes, 1):
            yield (f"{path}" if len(notes) == 1 else f"{path}#{index}"), note


@audit.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_files",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A checkpoint saved earlier (a signed note or a witness file); repeatable.",
)
@json_option
@click.pass_context
def verify_command(ctx: click.Context, checkpoint_files: tuple[Path, ...], as_json: bool) -> None:
    """Recompute the chain, every Merkle leaf and root, and check every checkpoint.

    Exit 0: intact. 1: an event was edited, deleted, inserted or reordered. 3: the log
    is shorter than a checkpoint (truncated, or the database was rolled back). 4: a
    checkpoint's root disagrees with the log (a fork) or its signature is bad.
    """
    from audit import FORKED, TRUNCATED, CheckpointInvalid

    trail, operator = _trail(ctx, "audit verify")
    checkpointer = trail.checkpointer
    pairs = []
    for label, note in [
        *((f"stored #{i}", n) for i, n in enumerate(checkpointer.all_notes(), 1)),
        *_notes(checkpoint_files),
    ]:
        try:
            pairs.append((label, checkpointer.verifier.verify(note, origin=checkpointer.origin)))
        except CheckpointInvalid as exc:
            _record_verify(operator, "forked", 0)
            click.echo(f"FAILED: checkpoint {label} is not validly signed: {exc}", err=True)
            raise SystemExit(EXIT_FORKED) from exc
    head = trail.audit.head()
    started = time.perf_counter()
    with progress(head.size, f"verifying {head.size} events") as bar:
        done = [0]

        def advance(count: int) -> None:
            bar.update(count - done[0])
            done[0] = count

        verified = trail.audit.verify(checkpoints=pairs, progress=advance)
    elapsed = time.perf_counter() - started
    # Recorded after the verification, so the event never changes what was verified.
    outcome = "ok" if verified.ok else verified.finding or "tampered"
    _record_verify(operator, outcome, verified.events)
    result = {
        "ok": verified.ok,
        "events": verified.events,
        "checkpoints_checked": verified.checkpoints_checked,
        "finding": verified.finding,
        "problem": verified.problem,
    }
    if verified.ok:
        report(
            as_json,
            {**result, "root": verified.root.hex()},
            f"ok: {verified.events} events, root {verified.root.hex()[:16]}, "
            f"{verified.checkpoints_checked} checkpoint(s) consistent "
            f"({verified.events / max(elapsed, 1e-9):,.0f} events/s)",
        )
        return
    report(
        as_json, result, f"FAILED after {verified.events} good events: {verified.problem}", err=True
    )
    code = {TRUNCATED: EXIT_TRUNCATED, FORKED: EXIT_FORKED}.get(verified.finding or "", 1)
    raise SystemExit(code)


def _record_verify(operator: Any, outcome: str, events: int) -> None:
    operator.record("audit.verify", decision="allow", outcome=outcome, events=events)


@audit.command("reindex")
@json_option
@click.pass_context
def reindex_command(ctx: click.Context, as_json: bool) -> None:
    """Rebuild the search index from the log, after verify found it wrong (officers, admins)."""
    from gateway.auditing.index import rebuild

    trail, operator = _trail(ctx, "audit reindex", OFFICERS | ADMINS)
    indexed = rebuild(trail.audit.engine)
    operator.record("audit.reindexed", decision="allow", events=indexed)
    report(as_json, {"indexed": indexed}, f"indexed {indexed} events")


@audit.command("witness")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Witness file.")
@click.option("--follow", is_flag=True, help="Keep witnessing every --interval seconds.")
@click.option("--interval", type=float, default=10.0, show_default=True)
@click.pass_context
def witness_command(ctx: click.Context, out: Path | None, follow: bool, interval: float) -> None:
    """Append the newest checkpoint to the witness file after checking that it extends
    the last one there; refuse a fork (exit 4) or a shrunken log (exit 3)."""
    from audit import AuditError, CheckpointInvalid, ConsistencyError, witness

    config = _config(ctx)
    target = out or (
        config.resolve_path(config.gateway.witness_file) if config.gateway.witness_file else None
    )
    if target is None:
        click.echo("error: give --out FILE or set gateway.witness_file", err=True)
        raise SystemExit(EXIT_USAGE)
    trail, operator = _trail(ctx, "audit witness")
    operator.record("audit.witness", decision="allow", target=str(target), follow=follow)
    while True:
        try:
            stored = trail.checkpointer.checkpoint()
            if stored is None:
                raise SystemExit(EXIT_USAGE)
            outcome = witness(
                target,
                stored.note,
                verifier=trail.checkpointer.verifier,
                origin=trail.checkpointer.origin,
                consistency=trail.proofs.consistency,
            )
        except ConsistencyError as exc:
            click.echo(f"REFUSED: {exc}", err=True)
            shrunk = "truncated or rolled back" in str(exc)
            raise SystemExit(EXIT_TRUNCATED if shrunk else EXIT_FORKED) from exc
        except CheckpointInvalid as exc:
            click.echo(f"REFUSED: {exc}", err=True)
            raise SystemExit(EXIT_FORKED) from exc
        except AuditError as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(1) from exc
        size = outcome.checkpoint.tree_size
        if outcome.appended:
            since = f" (consistent with {outcome.previous.tree_size})" if outcome.previous else ""
            click.echo(f"witnessed checkpoint of {size} events{since} in {target}")
        else:
            click.echo(f"no new events since the checkpoint of {size} events")
        if not follow:
            return
        time.sleep(interval)


@audit.command("verify-receipt")
@click.argument("receipt", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--key", "vkey", required=True, help="The log's public key (GET /v1/audit/public-key)."
)
@json_option
def verify_receipt(receipt: Path, vkey: str, as_json: bool) -> None:
    """Check a receipt (the JSON of GET /v1/audit/events/{seq}/proof) offline."""
    import base64

    from audit import AuditError, Verifier, leaf_hash, verify_inclusion

    try:
        data = orjson.loads(receipt.read_bytes())
        checkpoint = Verifier.from_vkey(vkey).verify(data["checkpoint"])
        body = str(data["body"]).encode()
        verify_inclusion(
            leaf_hash(body),
            int(data["seq"]) - 1,
            checkpoint.tree_size,
            [base64.b64decode(node) for node in data["proof"]],
            checkpoint.root_hash,
        )
        if orjson.loads(body).get("seq") != int(data["seq"]):
            raise AuditError("the event body names another sequence number")
    except (AuditError, KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
        report(as_json, {"ok": False, "problem": str(exc)}, f"INVALID: {exc}", err=True)
        raise SystemExit(1) from exc
    report(
        as_json,
        {"ok": True, "seq": int(data["seq"]), "origin": checkpoint.origin,
         "size": checkpoint.tree_size, "root": checkpoint.root_hash.hex()},
        f"ok: event {data['seq']} is in the log {checkpoint.origin} of "
        f"{checkpoint.tree_size} events (root {checkpoint.root_hash.hex()[:16]})",
    )  # fmt: skip
