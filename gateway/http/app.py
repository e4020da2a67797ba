"""``create_app(settings)``: builds the HTTP API from settings, with no global state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.access.sweeper import PeriodicSweep
from gateway.auditing.index import AuditIndexer
from gateway.auditing.trail import AuditTrail
from gateway.config import Config, Settings, load_config
from gateway.http import docs_pages, openapi
from gateway.http.console import install as install_console
from gateway.http.edge import Edge
from gateway.http.metrics import GatewayMetrics
from gateway.http.problems import install_error_handlers, status_of
from gateway.http.routes import (
    audit,
    catalog,
    decisions,
    grants,
    health,
    me,
    principals,
    query,
    trace,
)
from gateway.http.tracing import RequestTracing
from gateway.logs import configure_logging, request_id_var
from gateway.observability import ensure_available as ensure_tracing
from gateway.observability import start as start_tracing
from gateway.read.slots import ReadSlots
from gateway.service import Gateway
from gateway.state.wal import WalCheckpointer

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# The governed read: its response bytes are the data released.
DATA_ROUTE = "/v1/datasets/{name}/query"


OPENAPI_TAGS = [
    {"name": "operations", "description": "Liveness and readiness."},
    {"name": "me", "description": "The caller and the grants it holds."},
    {"name": "datasets", "description": "The caller's catalog and governed reads."},
    {"name": "decisions", "description": "Why a read would be allowed or refused."},
    {"name": "officers", "description": "Tracing a leaked extract to its recipient."},
    {"name": "grants", "description": "Grant requests, approvals, revocations, who may read."},
    {"name": "principals", "description": "Offboarding and suspension; the HR hook."},
    {"name": "audit", "description": "The audit log: checkpoints, proofs, search and export."},
]


def new_request_id() -> str:
    """32 hex characters: the millisecond clock, then 80 random bits.

    Ids that grow with time join the audit log's request-id index at its end rather
    than at a random page of it, which keeps appends cheaper as the log grows
    (docs/performance.md)."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def route_template(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The route template of a request, also for one FastAPI did not tag (its own /docs
    and /openapi.json pages); anything no route matches is ``unmatched``."""
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    for candidate in routes:
        match, _ = candidate.matches(scope)
        if match is Match.FULL:
            return str(getattr(candidate, "path", "unmatched"))
    return "unmatched"


@dataclass(eq=False)
class RequestContext:
    """Pure ASGI middleware: assigns the request id and records metrics.

    A caller may propose ``X-Request-ID`` (8-64 safe characters); anything else is
    replaced, so the id can be logged and audited without escaping."""

    app: ASGIApp
    requests: Counter
    latency: Histogram
    routes: Sequence[BaseRoute] = ()
    metrics: GatewayMetrics | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        proposed = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), ""
        )
        request_id = proposed if _REQUEST_ID.match(proposed) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        # Log records written for this request carry its id (the task's own context).
        request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        sent = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = route_template(scope, self.routes)
            elapsed = time.perf_counter() - started
            self.requests.labels(scope.get("method", ""), path, str(status)).inc()
            self.latency.labels(path).observe(elapsed)
            # One line per refused or failed request (every request at DEBUG); the path
            # is the route template, never the URL (it may name a principal).
            level = logging.INFO if status >= 400 else logging.DEBUG
            if log.isEnabledFor(level):
                log.log(
                    level,
                    "%s %s %d in %.1f ms",
                    scope.get("method", ""),
                    path,
                    status,
                    elapsed * 1000,
                    extra={"route": path, "status": status},
                )
            if path == DATA_ROUTE and status == 200 and self.metrics is not None:
                state = scope.get("state", {})
                dataset = scope.get("path_params", {}).get("name")
                self.metrics.count_bytes(state.get("caller_org"), dataset, sent)


def create_app(
    settings: Settings, *, config: Config | None = None, gateway: Gateway | None = None
) -> FastAPI:
    config = config or load_config(settings.config)
    registry = CollectorRegistry()
    requests = Counter(
        "kiteline_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry
    )
    latency = Histogram(
        "kiteline_http_request_seconds", "Request latency", ["route"], registry=registry
    )
    ensure_tracing(config.tracing)  # asked for without the otel extra: refuse to start
    owns_gateway = gateway is None
    if gateway is None:
        gateway = Gateway.from_config(config)
    app = FastAPI(
        title="kiteline",
        summary="A data-access governance gateway: governed, anonymized, audited reads.",
        version="0.1.0",
        # Served from installed files by docs_pages, not from FastAPI's CDN.
        docs_url=None,
        redoc_url=None,
        openapi_tags=OPENAPI_TAGS,
        lifespan=_lifespan(config, owns_gateway=owns_gateway),
        # FastAPI traces requests to any OpenTelemetry provider set up in the process.
        # kiteline's own record is the audit log and its metrics: request details leave
        # only through those, and the per-request probe for a provider is saved.
        telemetry=NO_TELEMETRY,
    )
    app.state.gateway = gateway
    # The audit log records a refusal with the status this app answers it with.
    gateway.audit.status_of = status_of
    app.state.audit_trail = AuditTrail.from_config(config, gateway.audit)
    app.state.settings = settings
    app.state.read_slots = ReadSlots(config.gateway.read_threads, inline=config.reads_inline)
    metrics = GatewayMetrics(registry, gateway, app.state.audit_trail)
    app.state.metrics_registry = metrics.scrape_registry(registry)
    app.state.gateway_metrics = metrics
    metrics.time_stores()
    install_error_handlers(app)
    # Routes are matched in order, one router after another: the governed read, by far
    # the most frequent request, comes first. The documentation keeps OPENAPI_TAGS' order.
    for module in (query, health, me, catalog, decisions, trace, grants, principals, audit):
        app.include_router(module.router)
    openapi.install(app)
    docs_pages.install(app)
    # The edge runs inside RequestContext, which names the request first.
    app.add_middleware(Edge, routes=lambda: app.router.routes)
    install_console(app)
    if config.tracing.enabled:
        app.add_middleware(RequestTracing, template=lambda s: route_template(s, app.router.routes))
    app.add_middleware(
        RequestContext,
        requests=requests,
        latency=latency,
        routes=app.router.routes,
        metrics=metrics,
    )
    return app


def _lifespan(config: Config, *, owns_gateway: bool) -> Callable[[FastAPI], Any]:
    """What runs beside the app while it serves, started and stopped with it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        gateway: Gateway = app.state.gateway
        metrics: GatewayMetrics = app.state.gateway_metrics
        # SIGHUP reloads the policy directory, as daemons conventionally do. Signal
        # handlers can only be installed from the main thread (not under a test client).
        loop = asyncio.get_running_loop()
        # Stopped in reverse order, each even when one before it fails: a failed stop
        # must not leave the other threads running.
        with contextlib.ExitStack() as running:
            if owns_gateway:
                running.callback(gateway.close)
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(
                    signal.SIGHUP,
                    lambda: loop.run_in_executor(None, _reload_quietly, app.state.gateway),
                )
                running.callback(loop.remove_signal_handler, signal.SIGHUP)
            gateway.audit.add_listener(metrics.observe)
            running.callback(gateway.audit.remove_listener, metrics.observe)
            if (tracing := start_tracing(config.tracing)) is not None:
                running.callback(tracing.shutdown)
            for background in (
                PeriodicSweep(gateway.grants, config.grants.sweep_interval_s),
                WalCheckpointer(gateway.engine),
                AuditIndexer(gateway.engine),
                app.state.audit_trail,
            ):
                background.start()
                running.callback(background.stop)
            yield

    return lifespan


def app_from_environment() -> FastAPI:
    """The app of one ``kiteline serve --workers N`` process, from ``KITELINE_*`` settings."""
    from_environment: dict[str, Any] = {}
    settings = Settings(**from_environment)
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)


def _reload_quietly(gateway: Gateway) -> None:
    with contextlib.suppress(Exception):  # refusals are logged and audited by the service
        gateway.reload_policy()
