"""``create_app(settings)``: builds the HTTP API from settings, with no global state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import signal
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.access.sweeper import PeriodicSweep
from gateway.auditing.index import AuditIndexer
from gateway.auditing.trail import AuditTrail
from gateway.config import Config, Settings, load_config
from gateway.http.console import install as install_console
from gateway.http.edge import Edge
from gateway.http.openapi import install_openapi
from gateway.http.problems import install_error_handlers
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
from gateway.read.slots import ReadSlots
from gateway.service import Gateway
from gateway.state.wal import WalCheckpointer

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


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


class RequestContext:
    """Pure ASGI middleware: assigns the request id and records metrics.

    A caller may propose ``X-Request-ID`` (8-64 safe characters); anything else is
    replaced, so the id can be logged and audited without escaping."""

    def __init__(self, app: ASGIApp, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        proposed = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), ""
        )
        request_id = proposed if _REQUEST_ID.match(proposed) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
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
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.requests.labels(scope.get("method", ""), path, str(status)).inc()
            self.latency.labels(path).observe(time.perf_counter() - started)


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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        # SIGHUP reloads the policy directory, as daemons conventionally do. Signal
        # handlers can only be installed from the main thread (not under a test client).
        loop = asyncio.get_running_loop()
        # Stopped in reverse order, each even when one before it fails: a failed stop
        # must not leave the other threads running.
        with contextlib.ExitStack() as running:
            if owns_gateway:
                running.callback(app.state.gateway.close)
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(
                    signal.SIGHUP,
                    lambda: loop.run_in_executor(None, _reload_quietly, app.state.gateway),
                )
                running.callback(loop.remove_signal_handler, signal.SIGHUP)
            for background in (
                PeriodicSweep(app.state.gateway.grants, config.grants.sweep_interval_s),
                WalCheckpointer(app.state.gateway.engine),
                AuditIndexer(app.state.gateway.engine),
                app.state.audit_trail,
            ):
                background.start()
                running.callback(background.stop)
            yield

    owns_gateway = gateway is None
    if gateway is None:
        gateway = Gateway.from_config(config)
    app = FastAPI(
        title="kiteline",
        summary="A data-access governance gateway: governed, anonymized, audited reads.",
        version="0.1.0",
        docs_url="/docs",
        openapi_tags=OPENAPI_TAGS,
        lifespan=lifespan,
        # FastAPI traces requests to any OpenTelemetry provider set up in the process.
        # kiteline's own record is the audit log and its metrics: request details leave
        # only through those, and the per-request probe for a provider is saved.
        telemetry=NO_TELEMETRY,
    )
    app.state.gateway = gateway
    app.state.audit_trail = AuditTrail.from_config(config, gateway.audit)
    app.state.settings = settings
    app.state.read_slots = ReadSlots(config.gateway.read_threads, inline=config.reads_inline)
    app.state.metrics_registry = registry
    install_error_handlers(app)
    install_openapi(app)
    # Routes are matched in order, one router after another: the governed read, by far
    # the most frequent request, comes first. The documentation keeps OPENAPI_TAGS' order.
    for module in (query, health, me, catalog, decisions, trace, grants, principals, audit):
        app.include_router(module.router)
    # The edge runs inside RequestContext, which names the request first.
    app.add_middleware(Edge, routes=lambda: app.router.routes)
    install_console(app)
    app.add_middleware(RequestContext, requests=requests, latency=latency)
    return app


def _reload_quietly(gateway: Gateway) -> None:
    with contextlib.suppress(Exception):  # refusals are logged and audited by the service
        gateway.reload_policy()
