"""Alerting: evaluates committed audit events, records alerts, posts them to webhooks.

The audit log hands each committed batch to ``AlertEngine.observe`` (a queue put, so
appends never wait for rules or networks). A worker thread evaluates the rules; each
alert becomes an ``alert.<kind>`` audit event, and a second worker posts it to the
configured webhooks with retries. Both threads start and stop with the app.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from audit import Alert, AlertEvaluator, AuditError, RulesFile, Webhook, parse_rules
from gateway.auditing.log import AuditLog
from gateway.auditing.search import EventFilter, matching
from gateway.state.models import AuditEvent, AuditIndexEntry

log = logging.getLogger(__name__)

_BASELINE_DAYS = 30
_BASELINE_EVENTS = 20_000
_STOP = object()
# Longest extra wait of an alert raised under load (see _evaluate_loop).
EVALUATION_PAUSE_S = 0.05


def load_rules_file(path: Path) -> RulesFile:
    return parse_rules(path.read_text(encoding="utf-8"), str(path))


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


class AlertEngine:
    def __init__(self, audit: AuditLog, rules: RulesFile) -> None:
        self._audit = audit
        self.rules = rules
        self._events: queue.Queue[Any] = queue.Queue(maxsize=100_000)  # commits' events
        self._deliveries: queue.Queue[Any] = queue.Queue(maxsize=10_000)
        self._threads: list[threading.Thread] = []
        self._evaluator: AlertEvaluator | None = None
        self._idle = threading.Condition()
        self._pending = 0

    def start(self) -> None:
        if self._threads:
            return
        seen, baselines = _history(self._audit)
        self._evaluator = AlertEvaluator(self.rules.rules, seen_modules=seen, baselines=baselines)
        self._audit.add_listener(self.observe)
        self._threads = [
            threading.Thread(target=self._evaluate_loop, name="audit-alerts", daemon=True),
            threading.Thread(target=self._deliver_loop, name="audit-webhooks", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        if not self._threads:
            return
        self._audit.remove_listener(self.observe)
        self._events.put(_STOP)
        self._threads[0].join(timeout_s)
        self._deliveries.put(_STOP)
        self._threads[1].join(timeout_s)
        self._threads = []

    def observe(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Called by the audit log after each commit: never blocks the appender. The
        commit's events travel together, so the evaluator wakes once per commit."""
        batch = [e for e in events if not str(e.get("action", "")).startswith("alert.")]
        if not batch:
            return
        with self._idle:
            self._pending += 1
        try:
            self._events.put_nowait(batch)
        except queue.Full:
            with self._idle:
                self._pending -= 1
            seqs = ", ".join(str(e.get("seq")) for e in batch)
            log.error("alert queue full: events %s were not evaluated", seqs)

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Block until every observed event has been evaluated (tests and shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout_s)

    def _evaluate_loop(self) -> None:
        while True:
            # Everything queued is taken at once: after a quiet spell that is the one
            # commit that woke the thread; under load, what arrived during the pause.
            batches = [self._events.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batches.append(self._events.get_nowait())
            for batch in batches:
                if batch is _STOP:
                    return
                self._evaluate(batch)
            # Rest a moment rather than wake (and take the interpreter lock from the
            # readers) for every commit.
            time.sleep(EVALUATION_PAUSE_S)

    def _evaluate(self, batch: Sequence[Mapping[str, Any]]) -> None:
        assert self._evaluator is not None
        try:
            for event in batch:
                try:
                    for alert in self._evaluator.observe(event):
                        self._raise(alert)
                except Exception:
                    log.exception("alert evaluation failed for event %s", event.get("seq"))
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _raise(self, alert: Alert) -> None:
        try:
            seq = self._audit.append(
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
        except AuditError:
            log.error("could not record alert %s for %s", alert.rule, alert.subject)
            return
        log.warning("alert %s (%s): %s", alert.rule, alert.severity, alert.message)
        if self.rules.webhooks:
            event = self._audit.event(seq)
            try:
                self._deliveries.put_nowait(event)
            except queue.Full:
                log.error("webhook queue full: alert %s was not posted", seq)

    def _deliver_loop(self) -> None:
        with httpx.Client() as http:
            while True:
                event = self._deliveries.get()
                if event is _STOP:
                    return
                for hook in self.rules.webhooks:
                    self._post(http, hook, event)

    @staticmethod
    def _post(http: httpx.Client, hook: Webhook, event: Mapping[str, Any]) -> None:
        body = orjson.dumps({"alert": event})
        for attempt in range(1, hook.attempts + 1):
            try:
                response = http.post(
                    hook.url,
                    content=body,
                    headers={"Content-Type": "application/json"},
                    timeout=hook.timeout_s,
                )
                if response.status_code < 300:
                    return
                problem = f"status {response.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            log.warning(
                "webhook attempt %d for alert %s failed: %s", attempt, event.get("seq"), problem
            )
            time.sleep(min(0.2 * 2**attempt, 2.0))
        log.error("gave up posting alert %s to a webhook", event.get("seq"))
