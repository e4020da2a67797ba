"""Egress and privacy budgets: how many rows and how much epsilon a grant may still spend.

A budget is an account (``grant:7:rows``, ``grant:9:epsilon``, ``org:stellar:epsilon``)
with a usage per period (a UTC day, or ``total``). Every charge is a conditional
``UPDATE ... SET used = used + cost WHERE used + cost <= cap`` inside one transaction
for all the accounts a request touches, so two concurrent requests can never both
spend the last of a budget, and a request either charges every account or none.
Row reads reserve their limit up front and give back what they did not send.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from gateway.config import Config
from gateway.errors import BudgetExhausted, InvalidRequest
from gateway.state.database import bump_version, write_transaction
from gateway.state.models import BudgetUsage, GrantLimits

log = logging.getLogger(__name__)

TOTAL = "total"
# A budget that resets sooner than this is named in a Retry-After header too.
RETRY_AFTER_WITHIN_S = 24 * 3600
# Epsilons are floats: a sum of ten 0.1 charges must still fit a cap of 1.0.
_SLACK = 1e-9


@dataclass(frozen=True, slots=True)
class Charge:
    account: str
    period: str
    amount: float
    cap: float | None  # None: tracked, never refused
    label: str  # what the caller is told when it is exhausted, e.g. "rows today"

    def with_amount(self, amount: float) -> Charge:
        return Charge(self.account, self.period, amount, self.cap, self.label)

    def resets_at(self) -> datetime | None:
        """When this budget starts afresh: the UTC midnight after its day, or None for
        a ``total`` budget, which never does."""
        if self.period == TOTAL:
            return None
        return datetime.combine(date.fromisoformat(self.period) + timedelta(days=1), time(), UTC)


@dataclass(frozen=True, slots=True)
class Limits:
    rows_per_request: int | None
    rows_per_day: int | None
    rows_total: int | None
    epsilon: float


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def limits_for(engine: Engine, config: Config, grant_id: int) -> Limits:
    with engine.connect() as conn:
        row = (
            conn.execute(select(GrantLimits.__table__).where(GrantLimits.grant_id == grant_id))
            .mappings()
            .first()
        )
    defaults = config.budgets
    if row is None:
        return Limits(None, defaults.rows_per_day, defaults.rows_total, defaults.epsilon_per_grant)
    return Limits(
        row["rows_per_request"],
        row["rows_per_day"] if row["rows_per_day"] is not None else defaults.rows_per_day,
        row["rows_total"] if row["rows_total"] is not None else defaults.rows_total,
        row["epsilon"] if row["epsilon"] is not None else defaults.epsilon_per_grant,
    )


class LimitsCache:
    """Grant limits as last read, valid while the ``grants`` state version stands.

    ``set_limits`` bumps that version, and every request reads it together with its API
    key, so a change made by any process applies from the next request on."""

    def __init__(self, engine: Engine, config: Config) -> None:
        self._engine = engine
        self._config = config
        self._version: int | None = None
        self._limits: dict[int, Limits] = {}
        self._lock = threading.Lock()

    def get(self, grant_id: int, grants_version: int | None) -> Limits:
        if grants_version is None:
            return limits_for(self._engine, self._config, grant_id)
        with self._lock:
            if grants_version == self._version and grant_id in self._limits:
                return self._limits[grant_id]
        limits = limits_for(self._engine, self._config, grant_id)
        with self._lock:
            if grants_version != self._version:
                self._version, self._limits = grants_version, {}
            self._limits[grant_id] = limits
        return limits


def set_limits(
    engine: Engine,
    grant_id: int,
    *,
    rows_per_request: int | None = None,
    rows_per_day: int | None = None,
    rows_total: int | None = None,
    epsilon: float | None = None,
) -> None:
    values = {
        "rows_per_request": rows_per_request,
        "rows_per_day": rows_per_day,
        "rows_total": rows_total,
        "epsilon": epsilon,
    }
    with write_transaction(engine) as conn:
        present = conn.scalar(select(GrantLimits.grant_id).where(GrantLimits.grant_id == grant_id))
        if present is None:
            conn.execute(insert(GrantLimits).values(grant_id=grant_id, **values))
        else:
            changed = {k: v for k, v in values.items() if v is not None}
            if changed:
                conn.execute(
                    update(GrantLimits).where(GrantLimits.grant_id == grant_id).values(**changed)
                )
        bump_version(conn, "grants")


def row_charges(grant_id: int, limits: Limits, rows: int, day: str) -> list[Charge]:
    account = f"grant:{grant_id}:rows"
    return [
        Charge(account, day, rows, limits.rows_per_day, "rows today"),
        Charge(account, TOTAL, rows, limits.rows_total, "rows in total"),
    ]


def epsilon_charges(
    config: Config, grant_id: int, limits: Limits, org: str | None, epsilon: float
) -> list[Charge]:
    charges = [Charge(f"grant:{grant_id}:epsilon", TOTAL, epsilon, limits.epsilon, "epsilon")]
    if org is not None:
        # Members of one org share this account: splitting queries over colluding
        # accounts (or over several grants) buys no extra privacy loss.
        charges.append(
            Charge(
                f"org:{org}:epsilon", TOTAL, epsilon, config.budgets.epsilon_per_org, "org epsilon"
            )
        )
    return charges


def _ensure_rows(conn: Connection, charges: Sequence[Charge]) -> None:
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    for c in charges:
        conn.execute(
            insert(BudgetUsage)
            .values(account=c.account, period=c.period, used=0.0)
            .on_conflict_do_nothing()
        )


def _used(conn: Connection, charge: Charge) -> float:
    value = conn.scalar(
        select(BudgetUsage.used).where(
            BudgetUsage.account == charge.account, BudgetUsage.period == charge.period
        )
    )
    return float(value or 0.0)


def remaining(engine: Engine, charges: Sequence[Charge]) -> dict[str, float | None]:
    """What is left of each charge's budget, by label (None: no cap)."""
    with engine.connect() as conn:
        return {
            c.label: None if c.cap is None else max(c.cap - _used(conn, c), 0.0) for c in charges
        }


class _Refused(Exception):
    def __init__(self, charge: Charge, left: float) -> None:
        super().__init__(charge.label)
        self.charge = charge
        self.left = left


def _begin(engine: Engine) -> Connection:
    # On SQLite, take the write lock up front: two deferred transactions that both read
    # and then write would otherwise fail on the upgrade instead of waiting.
    conn = engine.connect().execution_options(sqlite_begin="IMMEDIATE")
    return conn


def charge(engine: Engine, charges: Sequence[Charge]) -> dict[str, float | None]:
    """Charge every account or none; returns what remains, by label.

    Raises BudgetExhausted naming the first budget that cannot pay."""
    try:
        with _begin(engine) as conn, conn.begin():
            _ensure_rows(conn, charges)
            left: dict[str, float | None] = {}
            for c in charges:
                statement = (
                    update(BudgetUsage)
                    .where(BudgetUsage.account == c.account, BudgetUsage.period == c.period)
                    .values(used=BudgetUsage.used + c.amount)
                )
                if c.cap is not None:
                    statement = statement.where(BudgetUsage.used + c.amount <= c.cap + _SLACK)
                if conn.execute(statement).rowcount != 1:
                    raise _Refused(c, max((c.cap or 0.0) - _used(conn, c), 0.0))
                left[c.label] = None if c.cap is None else max(c.cap - _used(conn, c), 0.0)
            return left
    except _Refused as refused:
        raise exhausted(refused.charge, refused.left) from None


def exhausted(c: Charge, left: float, now: datetime | None = None) -> BudgetExhausted:
    """The refusal for a charge its budget cannot pay: what is left, what was needed and
    when the budget resets (RFC 3339, null when never), with a Retry-After within a day."""
    resets = c.resets_at()
    wait = None
    if resets is not None:
        seconds = math.ceil((resets - (now or datetime.now(UTC))).total_seconds())
        wait = max(seconds, 1) if seconds <= RETRY_AFTER_WITHIN_S else None
    return BudgetExhausted(
        f"the {c.label} budget is exhausted: {fmt(left)} left, {fmt(c.amount)} needed",
        retry_after_s=wait,
        budget=c.label,
        remaining=left,
        needed=c.amount,
        resets_at=None if resets is None else resets.isoformat().replace("+00:00", "Z"),
    )


def refund(engine: Engine, charges: Sequence[Charge]) -> None:
    """Give back charges that were not spent (a failed query, rows not sent)."""
    charges = [c for c in charges if c.amount > 0]
    if not charges:
        return
    with _begin(engine) as conn, conn.begin():
        for c in charges:
            conn.execute(
                update(BudgetUsage)
                .where(BudgetUsage.account == c.account, BudgetUsage.period == c.period)
                .values(used=BudgetUsage.used - c.amount)
            )


def reserve_rows(
    engine: Engine, grant_id: int, limits: Limits, wanted: int
) -> tuple[int, list[Charge], dict[str, float | None]]:
    """Reserve up to ``wanted`` rows for one read; fewer when less is left today or in
    total. Returns the rows reserved, the charges made (to settle later) and what is left.
    Raises BudgetExhausted when nothing is left."""
    day = today()
    if limits.rows_per_day is None and limits.rows_total is None:
        # No row cap applies to this grant: nothing can be refused, so the ledger is not
        # written (a cap set later counts the rows sent from then on).
        return wanted, [], {}
    amount = wanted
    for _ in range(3):
        charges = row_charges(grant_id, limits, amount, day)
        try:
            return amount, charges, charge(engine, charges)
        except BudgetExhausted:
            left = remaining(engine, charges)
            caps = [v for v in left.values() if v is not None]
            amount = int(min([wanted, *caps]))
            if amount <= 0:
                raise
    raise BudgetExhausted("the row budget is contended; retry shortly", budget="rows")


def settle_rows(engine: Engine, charges: Sequence[Charge], reserved: int, sent: int) -> None:
    if charges and sent < reserved:
        refund(engine, [c.with_amount(reserved - sent) for c in charges])


def check_epsilon(config: Config, epsilon: float | None) -> float:
    spend = config.budgets.epsilon_per_query if epsilon is None else epsilon
    if not 0 < spend <= config.budgets.max_epsilon_per_query:
        raise InvalidRequest(
            f"epsilon: must be above 0 and at most {config.budgets.max_epsilon_per_query}",
            rule="epsilon per query",
        )
    return spend


def fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def headers(left: dict[str, float | None]) -> dict[str, str]:
    """Response headers telling the caller what remains of each capped budget."""
    names = {
        "rows today": "X-Kiteline-Rows-Remaining-Today",
        "rows in total": "X-Kiteline-Rows-Remaining-Total",
        "epsilon": "X-Kiteline-Epsilon-Remaining",
        "org epsilon": "X-Kiteline-Org-Epsilon-Remaining",
    }
    return {names[k]: fmt(v) for k, v in left.items() if v is not None and k in names}
