"""Searching and exporting the audit log: filters, cursors, CSV and JSON lines.

Filters are validated here and refused with a 400 problem when malformed; cursors are
opaque to clients (base64 of a sequence number) and checked on the way back in. Filters
match the search index (``gateway.auditing.index``), which each search first brings up to
date; the events' bodies come from the log itself.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, Select, func, select

from gateway.auditing.index import COLUMNS as INDEXED_COLUMNS
from gateway.auditing.index import catch_up
from gateway.errors import InvalidRequest
from gateway.state.models import AuditEvent, AuditIndexEntry

MAX_PAGE = 1000
_RELATIVE = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_ACTION = re.compile(r"^[a-z][a-z0-9_.]{0,31}\*?$")
_CURSOR_PREFIX = "v1:"
FILTER_KEYS = (
    "actor",
    "org",
    "kind",
    "dataset",
    "module",
    "action",
    "decision",
    "since",
    "until",
    "request_id",
    "text",
)
# The searchable fields, as the index holds them, then fields of the event's body.
CSV_COLUMNS = (
    *INDEXED_COLUMNS,
    "reasons",
    "purpose",
    "profile",
    "columns",
    "rows",
    "digest",
    "query_seq",
    "client",
    "user_agent",
    "policy_version",
)


def parse_time(value: str, *, now: datetime | None = None) -> datetime:
    """ISO 8601 (naive means UTC) or a relative age such as ``7d``, ``24h``, ``30m``."""
    relative = _RELATIVE.match(value.strip())
    if relative:
        amount, unit = int(relative.group(1)), _UNITS[relative.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: amount})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidRequest(
            f"{value[:40]!r} is not a time: use ISO 8601 or an age like 7d, 24h, 30m"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class EventFilter:
    actor: str | None = None
    org: str | None = None
    kind: str | None = None
    dataset: str | None = None
    module: str | None = None
    action: str | None = None
    decision: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    request_id: str | None = None
    text: str | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str | None]) -> EventFilter:
        values: dict[str, Any] = {}
        for key in FILTER_KEYS:
            raw = params.get(key)
            if raw is None or raw == "":
                continue
            if len(raw) > 256 or any(ord(c) < 32 for c in raw):
                raise InvalidRequest(f"filter {key!r} is too long or holds control characters")
            if key in ("since", "until"):
                values[key] = parse_time(raw)
            elif key == "action" and not _ACTION.match(raw):
                raise InvalidRequest(
                    "filter 'action' must be an action such as data.query, or a prefix "
                    "ending in '*' such as grant.*"
                )
            else:
                values[key] = raw
        if values.get("since") and values.get("until") and values["since"] > values["until"]:
            raise InvalidRequest("filter 'since' is after 'until'")
        return cls(**values)

    def apply(self, query: Select[Any]) -> Select[Any]:
        """``query`` (over ``matching()``'s join) narrowed to the matching events."""
        index = AuditIndexEntry.__table__
        exact = {
            "actor": index.c.actor,
            "org": index.c.actor_org,
            "kind": index.c.actor_kind,
            "dataset": index.c.dataset,
            "module": index.c.module,
            "decision": index.c.decision,
            "request_id": index.c.request_id,
        }
        for key, column in exact.items():
            value = getattr(self, key)
            if value is not None:
                query = query.where(column == value)
        if self.action is not None:
            if self.action.endswith("*"):
                query = query.where(index.c.action.startswith(self.action[:-1], autoescape=True))
            else:
                query = query.where(index.c.action == self.action)
        if self.since is not None:
            query = query.where(index.c.ts >= self.since)
        if self.until is not None:
            query = query.where(index.c.ts < self.until)
        if self.text is not None:
            # Bodies are JSON: look for the text as JSON spells it inside a string.
            needle = orjson.dumps(self.text).decode()[1:-1]
            query = query.where(AuditEvent.__table__.c.body.contains(needle, autoescape=True))
        return query


def matching(engine: Engine, where: EventFilter, *columns: Any) -> Select[Any]:
    """``SELECT columns`` of the events ``where`` matches, once the index has caught
    up with the log; ``columns`` may name the index's columns and the events'."""
    catch_up(engine)
    index, events = AuditIndexEntry.__table__, AuditEvent.__table__
    joined = index.join(events, events.c.seq == index.c.seq)
    return where.apply(select(*columns).select_from(joined))


def count(engine: Engine, where: EventFilter, *, upto: int) -> int:
    """How many events ``<= upto`` match."""
    query = matching(engine, where, func.count()).where(AuditIndexEntry.seq <= upto)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidRequest("the cursor is malformed") from None
    if not text.startswith(_CURSOR_PREFIX) or not text[len(_CURSOR_PREFIX) :].isdigit():
        raise InvalidRequest("the cursor is malformed")
    seq = int(text[len(_CURSOR_PREFIX) :])
    if not 0 < seq < 2**62:
        raise InvalidRequest("the cursor is out of range")
    return seq


def search(
    engine: Engine, where: EventFilter, *, limit: int = 100, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of matching events, newest first, and the cursor of the next page."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}")
    seq = AuditIndexEntry.__table__.c.seq
    before = decode_cursor(cursor) if cursor is not None else None
    query = matching(engine, where, seq, AuditEvent.__table__.c.body)
    if before is not None:
        query = query.where(seq < before)
    query = query.order_by(seq.desc()).limit(limit + 1)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    events = [orjson.loads(body) for _, body in rows[:limit]]
    next_cursor = encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None
    return events, next_cursor


def iter_bodies(
    engine: Engine, where: EventFilter, *, upto: int, batch: int = 5000
) -> Iterator[str]:
    """The stored canonical JSON bodies of matching events ``<= upto``, oldest first."""
    seq, body = AuditIndexEntry.__table__.c.seq, AuditEvent.__table__.c.body
    matches = matching(engine, where, seq, body)
    after = 0
    while True:
        query = matches.where(seq > after, seq <= upto).order_by(seq).limit(batch)
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        for _, body in rows:
            yield body
        after = rows[-1][0]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value)
    text = str(value)
    # A leading = + - @ makes spreadsheets evaluate the cell: quote it inert.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return text


def csv_header() -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(CSV_COLUMNS)
    return buffer.getvalue()


def csv_line(body: str) -> str:
    event = orjson.loads(body)
    buffer = io.StringIO()
    csv.writer(buffer).writerow([_cell(event.get(column)) for column in CSV_COLUMNS])
    return buffer.getvalue()


def shown_filters(where: EventFilter) -> dict[str, Any]:
    """The filters of an officer's search as the audit log records them."""
    shown: dict[str, Any] = {}
    for key in ("actor", "org", "kind", "dataset", "module", "action", "decision", "request_id"):
        value = getattr(where, key)
        if value is not None:
            shown[key] = value
    for key in ("since", "until"):
        value = getattr(where, key)
        if value is not None:
            shown[key] = value.isoformat()
    if where.text is not None:
        # Free text may be a secret the officer is looking for: record only that it was given.
        shown["text"] = "(given)"
    return shown
