"""The structured query a caller sends, and its validation against what they may see.

Callers never send SQL: they name columns, conditions, an order and a window. Every
name is checked against the caller's view of the dataset and every value against the
column's type before a connector sees it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import orjson
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors import FILTER_OPS, Filter, OrderBy
from gateway.errors import AccessDenied, InvalidRequest
from gateway.read.views import ColumnView, DatasetView
from policies import Profile

MAX_IN_VALUES = 1000


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str = Field(min_length=1, max_length=128)
    op: str
    value: Any = None

    @field_validator("op")
    @classmethod
    def _known_op(cls, value: str) -> str:
        if value not in FILTER_OPS:
            raise ValueError(f"unknown operator {value!r}; use one of {', '.join(FILTER_OPS)}")
        return value


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str = Field(min_length=1, max_length=128)
    desc: bool = False


class Aggregation(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    fn: Literal["count", "sum", "avg"]
    column: str | None = None
    alias: str | None = Field(None, alias="as", max_length=64)


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    columns: list[str] | None = Field(None, max_length=512)
    where: list[Condition] = Field(default_factory=list, max_length=64)
    order_by: list[Order | str] = Field(default_factory=list, max_length=16)
    limit: int | None = Field(None, ge=1, le=100_000_000)
    cursor: str | None = Field(None, max_length=1024)
    purpose: str | None = Field(None, min_length=1, max_length=256)
    profile: Profile | None = None
    group_by: list[str] = Field(default_factory=list, max_length=16)
    aggregates: list[Aggregation] = Field(default_factory=list, max_length=16)
    epsilon: float | None = Field(None, gt=0, le=100)  # privacy spent by an aggregate query

    def orders(self) -> list[Order]:
        # "-col" is shorthand for {"column": "col", "desc": true}.
        return [
            o if isinstance(o, Order) else Order(column=o.lstrip("-"), desc=o.startswith("-"))
            for o in self.order_by
        ]

    def fingerprint(self, dataset: str, profile: str, principal: str = "") -> str:
        """What a cursor is bound to: everything but the window, and whom it was issued
        to (another principal's cursor is refused, not resumed)."""
        shape = self.model_dump(exclude={"limit", "cursor", "purpose"}, mode="json")
        shape["_dataset"], shape["_profile"] = dataset, profile
        shape["_principal"] = principal
        return hashlib.sha256(orjson.dumps(shape, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated row query: what is returned, and the filters (the grant's, then the
    caller's) and order the scan applies (see ``gateway.read.plan.scan_of``)."""

    output: list[ColumnView]
    filters: tuple[Filter, ...]
    order_by: tuple[OrderBy, ...]
    limit: int
    offset: int
    fingerprint: str


def _coerce(column: ColumnView, value: Any, where: str) -> Any:
    """Check ``value`` against the column's source type; returns the typed value."""
    t = column.source_type
    bad = InvalidRequest(
        f"{where}: value {value!r} does not fit column {column.name!r} of type {t}"
    )
    if isinstance(value, bool) and not pa.types.is_boolean(t):
        raise bad
    if pa.types.is_boolean(t):
        if not isinstance(value, bool):
            raise bad
        return value
    if pa.types.is_integer(t):
        if not isinstance(value, int) or not -(2**63) <= value < 2**63:
            raise bad
        return value
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        if not isinstance(value, int | float):
            raise bad
        return Decimal(str(value)) if pa.types.is_decimal(t) else value
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if not isinstance(value, str) or len(value) > 4096:
            raise bad
        return value
    if pa.types.is_date(t):
        try:
            return dt.date.fromisoformat(value)
        except (TypeError, ValueError):
            raise bad from None
    if pa.types.is_timestamp(t):
        try:
            moment = dt.datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise bad from None
        if t.tz is None and moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
        return moment
    raise InvalidRequest(f"{where}: column {column.name!r} of type {t} cannot be filtered")


def _typed_filter(column: ColumnView, condition: Condition, where: str) -> Filter:
    op, value = condition.op, condition.value
    if op == "is_null":
        if value not in (None, True, False):
            raise InvalidRequest(f"{where}: 'is_null' takes true, false or no value")
        return Filter(column.name, "is_null", value is not False)
    if op == "in":
        if not isinstance(value, list) or not 0 < len(value) <= MAX_IN_VALUES:
            raise InvalidRequest(f"{where}: 'in' takes a list of 1 to {MAX_IN_VALUES} values")
        return Filter(column.name, "in", tuple(_coerce(column, v, where) for v in value))
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise InvalidRequest(f"{where}: 'between' takes a list [low, high]")
        return Filter(column.name, "between", tuple(_coerce(column, v, where) for v in value))
    if op == "like":
        if not (
            pa.types.is_string(column.source_type) or pa.types.is_large_string(column.source_type)
        ):
            raise InvalidRequest(f"{where}: 'like' applies to text columns only")
    if value is None:
        raise InvalidRequest(f"{where}: operator {op!r} needs a value (use is_null for nulls)")
    return Filter(column.name, op, _coerce(column, value, where))  # type: ignore[arg-type]


def _column(view: DatasetView, name: str, where: str) -> ColumnView:
    column = view.columns.get(name)
    if column is None:
        raise InvalidRequest(f"{where}: unknown column {name!r} in dataset {view.name!r}")
    return column


def _unchanged(view: DatasetView, name: str, where: str, use: str, rule: str) -> ColumnView:
    """The column named, refused unless the profile returns it unchanged: a filter or an
    order on a masked or generalized column would reveal the values behind it."""
    column = _column(view, name, where)
    if not column.filterable:
        raise AccessDenied(
            f"{where}: column {column.name!r} is {column.treatment} under the "
            f"{view.profile!r} profile; {use} only to columns returned unchanged",
            column=column.name,
            rule=rule,
        )
    return column


def _hidden(view: DatasetView, column: ColumnView, where: str) -> AccessDenied:
    return AccessDenied(
        f"{where}: column {column.name!r} ({column.spec.classification}) is not returned "
        f"under the {view.profile!r} profile",
        column=column.name,
        rule=f"{column.spec.classification} under {view.profile}",
    )


class CursorCodec:
    """Opaque, signed page cursors bound to one query shape."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, offset: int, fingerprint: str) -> str:
        payload = orjson.dumps({"o": offset, "f": fingerprint})
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")

    def decode(self, cursor: str, fingerprint: str) -> int:
        bad = InvalidRequest("cursor: not a cursor issued for this query")
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except ValueError:
            raise bad from None
        payload, mac = raw[:-16], raw[-16:]
        if len(raw) < 17 or not hmac.compare_digest(
            mac, hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        ):
            raise bad
        data = orjson.loads(payload)
        if data.get("f") != fingerprint or not isinstance(data.get("o"), int) or data["o"] < 0:
            raise bad
        return int(data["o"])


def _output(request: QueryRequest, view: DatasetView) -> list[ColumnView]:
    """The columns returned: those asked for, each one the profile returns."""
    if request.columns is None:
        output = list(view.returned)
    else:
        output = []
        for i, name in enumerate(request.columns):
            column = _column(view, name, f"columns[{i}]")
            if not column.returned:
                raise _hidden(view, column, f"columns[{i}]")
            if column not in output:
                output.append(column)
    if not output:
        raise AccessDenied(
            f"no column of {view.name!r} is returned under the {view.profile!r} profile"
        )
    return output


def _orders(request: QueryRequest, view: DatasetView) -> tuple[OrderBy, ...]:
    orders = []
    for i, order in enumerate(request.orders()):
        where = f"order_by[{i}]"
        column = _unchanged(
            view, order.column, where, "ordering applies", "order on transformed column"
        )
        orders.append(OrderBy(column.name, order.desc))
    return tuple(orders)


def plan_rows(
    request: QueryRequest,
    view: DatasetView,
    *,
    max_rows: int,
    default_limit: int,
    row_filters: tuple[Filter, ...],
    cursors: CursorCodec,
    principal: str = "",
) -> Plan:
    """Validate a row query against the caller's view and turn it into a scan; a cursor
    is honoured only from the ``principal`` it was issued to."""
    if view.profile == "aggregate":
        raise AccessDenied(
            "the aggregate profile returns no rows; send group_by and aggregates",
            rule="aggregate profile",
        )
    output = _output(request, view)
    filters = list(row_filters)
    for i, condition in enumerate(request.where):
        where = f"where[{i}]"
        column = _unchanged(
            view, condition.column, where, "filters apply", "filter on transformed column"
        )
        filters.append(_typed_filter(column, condition, where))
    orders = _orders(request, view)
    limit = request.limit if request.limit is not None else min(default_limit, max_rows)
    if limit > max_rows:
        raise InvalidRequest(
            f"limit: at most {max_rows} rows per request under your grant", max_rows=max_rows
        )
    fingerprint = request.fingerprint(view.name, view.profile, principal)
    offset = cursors.decode(request.cursor, fingerprint) if request.cursor else 0
    return Plan(
        output=output,
        filters=tuple(filters),
        order_by=orders,
        limit=limit,
        offset=offset,
        fingerprint=fingerprint,
    )
