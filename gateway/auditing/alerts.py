"""Alerting: evaluates committed audit events, records alerts, posts them to webhooks.

One gateway process per state database evaluates the rules: it holds a short lease in
``alert_cursor`` and reads the log from the database after the last event it saw, so
events appended by every process (and by the CLI) are evaluated once, and an alert is
raised once however many gateways share the database. Each alert becomes an
``alert.<kind>`` audit event. Every ``alert.*`` event in the log, whoever appended it,
becomes one row of ``webhook_deliveries`` per webhook, posted signed (Standard
Webhooks) and retried with doubling waits until the receiver accepts it; a lease that
passes to another process (a restart, a crash) takes the pending deliveries with it.

Appends never wait for the rules: the log only wakes the evaluating thread.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from audit import (
    Alert,
    AlertEvaluator,
    AuditError,
    RulesFile,
    Webhook,
    parse_rules,
    secret_key,
    signed_headers,
)
from gateway.auditing.log import AuditLog
from gateway.auditing.search import EventFilter, matching
from gateway.state.models import AlertCursor, AuditEvent, AuditIndexEntry, WebhookDelivery

log = logging.getLogger(__name__)

_BASELINE_DAYS = 30
_BASELINE_EVENTS = 20_000
_CURSOR = "alerts"
# Events read from the log per round, and deliveries attempted per round.
_PAGE = 500
_DELIVERIES = 50
FIRST_BACKOFF_S = 1.0
# The shortest time between two evaluation rounds of the leading process.
EVALUATION_PAUSE_S = 0.05


def load_rules_file(path: Path) -> RulesFile:
    return parse_rules(path.read_text(encoding="utf-8"), str(path))


@dataclass(frozen=True)
class SignedWebhook:
    """A webhook with the key its deliveries are signed with."""

    hook: Webhook
    key: bytes

    @classmethod
    def resolve(cls, hook: Webhook, dereference: Callable[[str], str]) -> SignedWebhook:
        return cls(hook, secret_key(dereference(hook.secret)))


def backoff_s(attempts: int, ceiling_s: float) -> float:
    """The wait after ``attempts`` failed attempts: 1 s, 2 s, 4 s ... up to ``ceiling_s``."""
    return float(min(FIRST_BACKOFF_S * 2 ** max(attempts - 1, 0), ceiling_s))


def _history(audit: AuditLog) -> tuple[set[tuple[str, str]], dict[str, tuple[int, float]]]:
    """Which principals already read which modules, and their usual rows per read."""
    index, events = AuditIndexEntry.__table__, AuditEvent.__table__
    since = datetime.now(UTC) - timedelta(days=_BASELINE_DAYS)
    readers = matching(
        audit.engine,
        EventFilter(action="data.query", decision="allow"),
        index.c.actor,
        index.c.module,
    ).where(index.c.actor.is_not(None), index.c.module.is_not(None))
    reads = matching(audit.engine, EventFilter(action="data.read", since=since), events.c.body)
    with audit.engine.connect() as conn:
        seen = {(str(actor), str(module)) for actor, module in conn.execute(readers.distinct())}
        bodies = conn.execute(reads.order_by(index.c.seq.desc()).limit(_BASELINE_EVENTS)).scalars()
        sums: dict[str, tuple[int, float]] = {}
        for body in bodies:
            event = orjson.loads(body)
            rows, actor = event.get("rows"), event.get("actor")
            if isinstance(rows, int) and actor and event.get("decision") == "allow":
                count, total = sums.get(actor, (0, 0.0))
                sums[actor] = (count + 1, total + rows)
    return seen, {actor: (n, total / n) for actor, (n, total) in sums.items()}


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class AlertEngine:
    def __init__(
        self,
        audit: AuditLog,
        rules: RulesFile,
        dereference: Callable[[str], str] | None = None,
        *,
        poll_s: float = 0.25,
        lease_s: float = 10.0,
    ) -> None:
        self._audit = audit
        self.rules = rules
        # Secrets are read when the engine starts (a gateway that cannot sign its
        # webhooks does not start), never by the CLI's commands that only read the log.
        self._dereference = dereference
        self._webhooks: list[SignedWebhook] = []
        self._poll_s = poll_s
        self._lease_s = lease_s
        self._holder = f"{socket.gethostname()[:40]}:{os.getpid()}:{id(self) % 10_000}"
        self._evaluator: AlertEvaluator | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.leading = False
        self._renew_at = _now()
        self._last_seq = 0  # how far the rules have read (while leading)
        # Counted for /metrics: failed webhook attempts, and deliveries made.
        self.webhook_failures = 0
        self.webhook_deliveries = 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        if self.rules.webhooks:
            if self._dereference is None:
                raise AuditError("webhooks are configured but their secrets cannot be read")
            resolve = self._dereference
            self._webhooks = [SignedWebhook.resolve(h, resolve) for h in self.rules.webhooks]
        self._ensure_cursor()
        self._stopping.clear()
        self._audit.add_listener(self.observe)
        self._thread = threading.Thread(target=self._loop, name="audit-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._thread is None:
            return
        self._audit.remove_listener(self.observe)
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout_s)
        self._thread = None
        self._release()

    def observe(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Called by the audit log after each commit: only wakes the evaluating thread."""
        del events  # read back from the database, with every other process's events
        self._wake.set()

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Block until this process leads and has evaluated the whole log (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.leading and self._cursor() >= self._audit.head().size:
                return True
            self._wake.set()
            time.sleep(0.02)
        return False

    # -- the loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._take_lease():
                    while self._catch_up():
                        pass
                    self._deliver_due()
            except Exception:
                log.exception("alert evaluation failed; retrying")
            if self.leading:
                # Woken by this process's commits, but at most once per pause: under load
                # one round reads what many commits wrote.
                self._wake.wait(self._poll_s)
                self._stopping.wait(EVALUATION_PAUSE_S)
            else:
                # Only the lease is watched; the leader reads every process's events.
                self._stopping.wait(self._poll_s)
            self._wake.clear()

    def _ensure_cursor(self) -> None:
        """A new cursor starts at the head: the rules watch what happens from now on."""
        with self._audit.engine.begin() as conn:
            if conn.scalar(select(AlertCursor.name).where(AlertCursor.name == _CURSOR)):
                return
        try:
            with self._audit.engine.begin() as conn:
                conn.execute(
                    insert(AlertCursor).values(name=_CURSOR, last_seq=self._audit.head().size)
                )
        except IntegrityError:
            pass  # another process created it first

    def _take_lease(self) -> bool:
        moment = _now()
        if self.leading and moment < self._renew_at:
            return True
        table = AlertCursor
        with self._audit.engine.begin() as conn:
            taken = conn.execute(
                update(table)
                .where(
                    table.name == _CURSOR,
                    (table.holder == self._holder)
                    | table.holder.is_(None)
                    | (table.lease_until < moment),
                )
                .values(holder=self._holder, lease_until=moment + timedelta(seconds=self._lease_s))
            ).rowcount
        leading = taken == 1
        # Renewed when a third of the lease has passed: one write per few seconds.
        self._renew_at = moment + timedelta(seconds=self._lease_s / 3)
        if leading and not self.leading:
            seen, baselines = _history(self._audit)
            self._last_seq = self._cursor()
            self._evaluator = AlertEvaluator(
                self.rules.rules, seen_modules=seen, baselines=baselines
            )
            log.info("this process now evaluates the alert rules (%s)", self._holder)
        if not leading:
            self._evaluator = None
        self.leading = leading
        return leading

    def _release(self) -> None:
        if not self.leading:
            return
        table = AlertCursor
        with self._audit.engine.begin() as conn:
            conn.execute(
                update(table)
                .where(table.name == _CURSOR, table.holder == self._holder)
                .values(holder=None, lease_until=None)
            )
        self.leading = False

    def _cursor(self) -> int:
        with self._audit.engine.connect() as conn:
            return int(
                conn.scalar(select(AlertCursor.last_seq).where(AlertCursor.name == _CURSOR)) or 0
            )

    def _catch_up(self) -> bool:
        """Evaluate the next page of events; True when a full page was read."""
        start = self._last_seq
        events = AuditEvent.__table__
        with self._audit.engine.connect() as conn:
            rows = conn.execute(
                select(events.c.seq, events.c.body)
                .where(events.c.seq > start)
                .order_by(events.c.seq)
                .limit(_PAGE)
            ).all()
        if not rows:
            return False
        assert self._evaluator is not None
        alert_seqs = []
        for seq, body in rows:
            event = orjson.loads(body)
            if str(event.get("action", "")).startswith("alert."):
                alert_seqs.append(int(seq))
                continue  # alerts never trigger alerts
            try:
                for alert in self._evaluator.observe(event):
                    self._raise(alert)
            except AuditError:
                raise
            except Exception:
                log.exception("alert evaluation failed for event %s", seq)
        self._enqueue(alert_seqs)
        table = AlertCursor
        with self._audit.engine.begin() as conn:
            moved = conn.execute(
                update(table)
                .where(table.name == _CURSOR, table.holder == self._holder)
                .values(last_seq=int(rows[-1][0]))
            ).rowcount
        if moved != 1:
            self.leading = False  # the lease passed on while this page was evaluated
            return False
        self._last_seq = int(rows[-1][0])
        return len(rows) == _PAGE

    def _raise(self, alert: Alert) -> None:
        self._audit.append(
            f"alert.{alert.kind}",
            actor="kiteline",
            decision="alert",
            reasons=[alert.message],
            rule=alert.rule,
            severity=alert.severity,
            subject=alert.subject,
            related_seqs=list(alert.seqs),
            # An "actions" rule names the action it matched: kept apart from the
            # alert's own action.
            **{
                ("matched_action" if k == "action" else k): v
                for k, v in alert.details.items()
                if k not in ("seq", "ts")
            },
        )
        log.warning("alert %s (%s): %s", alert.rule, alert.severity, alert.message)

    # -- webhooks ----------------------------------------------------------------------

    def _enqueue(self, seqs: Sequence[int]) -> None:
        if not seqs or not self._webhooks:
            return
        moment = _now()
        for seq in seqs:
            for signed in self._webhooks:
                try:
                    with self._audit.engine.begin() as conn:
                        conn.execute(
                            insert(WebhookDelivery).values(
                                seq=seq,
                                url=signed.hook.url,
                                attempts=0,
                                next_attempt_at=moment,
                                created_at=moment,
                            )
                        )
                except IntegrityError:
                    pass  # queued already, before the lease passed on

    def pending_deliveries(self) -> int:
        with self._audit.engine.connect() as conn:
            return int(
                conn.scalar(
                    select(func.count())
                    .select_from(WebhookDelivery)
                    .where(WebhookDelivery.delivered_at.is_(None))
                )
                or 0
            )

    def _deliver_due(self) -> None:
        if not self._webhooks:
            return
        table = WebhookDelivery.__table__
        hooks = {signed.hook.url: signed for signed in self._webhooks}
        with self._audit.engine.connect() as conn:
            due = conn.execute(
                select(table.c.id, table.c.seq, table.c.url, table.c.attempts)
                .where(table.c.delivered_at.is_(None), table.c.next_attempt_at <= _now())
                .order_by(table.c.id)
                .limit(_DELIVERIES)
            ).all()
        if not due:
            return
        with httpx.Client() as http:
            for delivery_id, seq, url, attempts in due:
                signed = hooks.get(url)
                if signed is None:
                    continue  # a webhook no longer configured: kept, not posted
                problem = self._post(http, signed, int(seq))
                values: dict[str, Any]
                if problem is None:
                    self.webhook_deliveries += 1
                    values = {"delivered_at": _now(), "attempts": attempts + 1, "last_error": None}
                else:
                    self.webhook_failures += 1
                    wait = backoff_s(attempts + 1, signed.hook.max_backoff_s)
                    log.error(
                        "webhook delivery of alert %s failed (attempt %d: %s); retry in %.0f s",
                        seq,
                        attempts + 1,
                        problem,
                        wait,
                    )
                    values = {
                        "attempts": attempts + 1,
                        "last_error": problem[:200],
                        "next_attempt_at": _now() + timedelta(seconds=wait),
                    }
                with self._audit.engine.begin() as conn:
                    conn.execute(
                        update(WebhookDelivery)
                        .where(WebhookDelivery.id == delivery_id)
                        .values(**values)
                    )

    def _post(self, http: httpx.Client, signed: SignedWebhook, seq: int) -> str | None:
        """Post one alert; None when the receiver accepted it, else what went wrong."""
        events = AuditEvent.__table__
        with self._audit.engine.connect() as conn:
            row = conn.execute(
                select(events.c.body, events.c.hash).where(events.c.seq == seq)
            ).first()
        if row is None:
            return "the alert event is missing from the log"
        event = orjson.loads(row[0])
        body = orjson.dumps(
            {"type": event.get("action"), "timestamp": event.get("ts"), "data": event}
        )
        # The same id on every retry (receivers drop duplicates by it), unique to the event.
        chained = row[1].hex() if isinstance(row[1], bytes) else str(row[1])
        msg_id = f"msg_{seq}_{chained[:16]}"
        headers = {"Content-Type": "application/json", **signed_headers(signed.key, msg_id, body)}
        try:
            response = http.post(
                signed.hook.url, content=body, headers=headers, timeout=signed.hook.timeout_s
            )
        except httpx.HTTPError as exc:
            return type(exc).__name__
        if response.status_code < 300:
            return None
        return f"status {response.status_code}"
