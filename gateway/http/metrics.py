"""Prometheus metrics worth alerting on, one registry per app.

Counters follow the audit log: every committed event passes through ``observe`` (a
listener of the log, called after each commit), so the decisions and releases counted
are exactly the ones recorded. Gauges that describe shared state (checkpoint age,
budgets left, webhook deliveries pending) are read from the state database when
Prometheus scrapes, so every gateway process reports the same values for them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from gateway.access import budgets
from gateway.access.grants import active_grants
from gateway.auditing.trail import AuditTrail
from gateway.service import Gateway
from gateway.state.models import AuditCheckpoint, WebhookDelivery

log = logging.getLogger(__name__)

# The events that record one decision on a data request.
DECISIONS = frozenset({"data.query", "data.denied", "request.rejected", "request.failed"})
# Budgets are listed for at most this many active grants per scrape.
MAX_BUDGET_GRANTS = 500
# prometheus_client's multiprocess mode: the folder where worker processes keep counts.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _label(value: Any) -> str:
    return str(value) if value not in (None, "") else "none"


class GatewayMetrics:
    """The metrics of one gateway process."""

    def __init__(self, registry: CollectorRegistry, gateway: Gateway, trail: AuditTrail) -> None:
        self._gateway = gateway
        self.decisions = Counter(
            "kiteline_decisions",
            "Decisions on data requests, by result (allow, deny, reject, error) and rule",
            ["result", "rule"],
            registry=registry,
        )
        self.rows = Counter(
            "kiteline_rows_released",
            "Rows released to callers, by the caller's org and the dataset",
            ["org", "dataset"],
            registry=registry,
        )
        self.bytes = Counter(
            "kiteline_bytes_released",
            "Response bytes of data reads written to callers, by org and dataset",
            ["org", "dataset"],
            registry=registry,
        )
        self.append_latency = Histogram(
            "kiteline_audit_append_seconds",
            "From an event's creation to its commit in the audit log",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.store_latency = Histogram(
            "kiteline_store_seconds",
            "Time spent in the store per scan or aggregate, by store kind and operation",
            ["kind", "op"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.state = _StateCollector(gateway, trail)
        registry.register(self.state)

    def scrape_registry(self, registry: CollectorRegistry) -> CollectorRegistry:
        """What ``/metrics`` reports. Under ``serve --workers N`` (which sets
        PROMETHEUS_MULTIPROC_DIR for its workers) each worker writes its counters and
        histograms to files in that folder, and a scrape, whichever worker answers it,
        sums every worker's; the gauges of this process and of the shared state come
        once, from the worker that answers. One process: its own registry."""
        folder = os.environ.get(MULTIPROCESS_DIR)
        if not folder:
            return registry
        from prometheus_client.multiprocess import MultiProcessCollector

        scrape = CollectorRegistry()
        MultiProcessCollector(scrape, path=folder)
        scrape.register(self.state)
        return scrape

    def observe(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Count one commit's events; called by the audit log, so it must not raise."""
        now = datetime.now(UTC)
        try:
            for event in events:
                self._count(event, now)
        except Exception:
            log.exception("metrics could not count an audit commit")

    def _count(self, event: Mapping[str, Any], now: datetime) -> None:
        action = event.get("action")
        try:
            created = datetime.fromisoformat(str(event.get("ts")))
            self.append_latency.observe(max((now - created).total_seconds(), 0.0))
        except ValueError:
            pass
        if action in DECISIONS:
            rule = event.get("rule") or ("grant" if event.get("decision") == "allow" else None)
            self.decisions.labels(_label(event.get("decision")), _label(rule)).inc()
        elif action == "data.read" and isinstance(event.get("rows"), int):
            org, dataset = _label(event.get("actor_org")), _label(event.get("dataset"))
            self.rows.labels(org, dataset).inc(event["rows"])

    def count_bytes(self, org: str | None, dataset: str | None, sent: int) -> None:
        self.bytes.labels(_label(org), _label(dataset)).inc(sent)

    def time_stores(self) -> None:
        """Wrap the gateway's connectors so that time spent in each store is measured."""
        connectors = self._gateway.connectors
        for name, connector in list(connectors.items()):
            if not isinstance(connector, TimedConnector):
                kind = type(self._gateway.config.stores[name]).__name__.removesuffix("Store")
                connectors[name] = TimedConnector(connector, kind.lower(), self.store_latency)


class TimedConnector:
    """A connector whose scans and aggregates are timed (time inside the store only)."""

    def __init__(self, inner: Any, kind: str, histogram: Histogram) -> None:
        self._inner = inner
        self.kind = kind
        self._scan = histogram.labels(kind, "scan")
        self._aggregate = histogram.labels(kind, "aggregate")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def scan(self, *args: Any, **kwargs: Any) -> Iterator[pa.RecordBatch]:
        started = time.perf_counter()
        batches = self._inner.scan(*args, **kwargs)
        spent = time.perf_counter() - started
        return _timed(batches, spent, self._scan)

    def aggregate(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._inner.aggregate(*args, **kwargs)
        finally:
            self._aggregate.observe(time.perf_counter() - started)


def _timed(batches: Iterator[pa.RecordBatch], spent: float, child: Any) -> Iterator[pa.RecordBatch]:
    """Yield the store's batches, adding up the time spent waiting for each."""
    iterator = iter(batches)
    try:
        while True:
            started = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                spent += time.perf_counter() - started
                return
            spent += time.perf_counter() - started
            yield batch
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
        child.observe(spent)


class _StateCollector(Collector):
    """Gauges read at scrape time from this process and the shared state database."""

    def __init__(self, gateway: Gateway, trail: AuditTrail) -> None:
        self._gateway = gateway
        self._trail = trail

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        gateway, audit = self._gateway, self._trail.audit
        yield GaugeMetricFamily(
            "kiteline_live_reads", "Streaming reads in progress in this process",
            value=len(gateway.inflight),
        )  # fmt: skip
        if self._trail.alerts is not None:
            yield CounterMetricFamily(
                "kiteline_webhook_failures",
                "Failed webhook delivery attempts made by this process",
                value=self._trail.alerts.webhook_failures,
            )
        yield GaugeMetricFamily(
            "kiteline_audit_backlog",
            "Events waiting in this process to be appended to the audit log",
            value=audit.backlog,
        )
        try:
            yield from self._shared()
        except Exception:
            # A scrape never fails the process; readiness reports the database.
            log.exception("metrics could not read the state database")

    def _shared(self) -> Iterator[GaugeMetricFamily]:
        gateway = self._gateway
        engine = gateway.engine
        with engine.connect() as conn:
            newest = conn.scalar(select(func.max(AuditCheckpoint.created_at)))
            pending = conn.scalar(
                select(func.count())
                .select_from(WebhookDelivery)
                .where(WebhookDelivery.delivered_at.is_(None))
            )
            failing = conn.scalar(
                select(func.count())
                .select_from(WebhookDelivery)
                .where(WebhookDelivery.delivered_at.is_(None), WebhookDelivery.attempts > 0)
            )
            grants = active_grants(conn)[:MAX_BUDGET_GRANTS]
        age = GaugeMetricFamily(
            "kiteline_audit_checkpoint_age_seconds",
            "Seconds since the newest signed checkpoint (-1: none yet)",
        )
        if newest is None:
            age.add_metric([], -1.0)
        else:
            moment = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
            age.add_metric([], (datetime.now(UTC) - moment).total_seconds())
        yield age
        yield GaugeMetricFamily(
            "kiteline_webhook_deliveries_pending",
            "Alert deliveries not yet accepted by their webhook",
            value=int(pending or 0),
        )
        yield GaugeMetricFamily(
            "kiteline_webhook_deliveries_failing",
            "Pending alert deliveries whose last attempt failed",
            value=int(failing or 0),
        )
        left = GaugeMetricFamily(
            "kiteline_budget_remaining",
            "What is left of each active grant's row budgets (per day, in total)",
            labels=["grant", "budget"],
        )
        today = budgets.today()
        for grant in grants:
            limits = budgets.limits_for(engine, gateway.config, grant.id)
            charges = budgets.row_charges(grant.id, limits, 0, today)
            for key, value in budgets.remaining(engine, charges).items():
                if value is not None:
                    left.add_metric([str(grant.id), key], float(value))
        yield left
