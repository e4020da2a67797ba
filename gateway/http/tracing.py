"""The request span and its delivery span, around everything the gateway does for it.

A pure ASGI middleware, inside ``RequestContext`` (which names the request first) and
around the edge, so a request refused before any handler is traced too. A caller's W3C
``traceparent`` (and ``tracestate``) makes the request a child of the caller's span.
The spans carry the route template, never the URL (it may name a principal), and no
header but the trace context is read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.observability import tracing

_TRACE_HEADERS = {b"traceparent": "traceparent", b"tracestate": "tracestate"}


class RequestTracing:
    def __init__(self, app: ASGIApp, template: Callable[[Scope], str]) -> None:
        self.app = app
        self.template = template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        active = tracing.tracer()
        if scope["type"] != "http" or active is None:
            await self.app(scope, receive, send)
            return
        from opentelemetry import context
        from opentelemetry.trace import SpanKind, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier = {
            _TRACE_HEADERS[k]: v.decode("latin-1")
            for k, v in scope["headers"]
            if k in _TRACE_HEADERS
        }
        parent = TraceContextTextMapPropagator().extract(carrier)
        method = scope.get("method", "")
        request = active.start_span(method, context=parent, kind=SpanKind.SERVER)
        request.set_attribute("http.request.method", method)
        request_id = scope.get("state", {}).get("request_id")
        if request_id:
            request.set_attribute("kiteline.request_id", request_id)
        inside = set_span_in_context(request, parent)
        token = context.attach(inside)
        delivery = _Delivery(active, inside)

        async def traced_send(message: Message) -> None:
            delivery.handing(message, request)
            await send(message)
            delivery.handed(message)

        try:
            await self.app(scope, receive, traced_send)
        except BaseException as exc:
            tracing.failed(request, exc)
            raise
        finally:
            delivery.end()
            route = self.template(scope)
            request.update_name(f"{method} {route}")
            request.set_attribute("http.route", route)
            request.end()
            context.detach(token)


class _Delivery:
    """The span from the response's first message to its last byte handed over."""

    def __init__(self, active: Any, parent: Any) -> None:
        self._active = active
        self._parent = parent
        self._span: Any = None
        self._bytes = 0

    def handing(self, message: Message, request: Any) -> None:
        if message["type"] != "http.response.start":
            return
        status = int(message["status"])
        request.set_attribute("http.response.status_code", status)
        if status >= 500:
            from opentelemetry.trace import Status, StatusCode

            request.set_status(Status(StatusCode.ERROR, str(status)))
        self._span = self._active.start_span("kiteline.delivery", context=self._parent)

    def handed(self, message: Message) -> None:
        if message["type"] == "http.response.body" and self._span is not None:
            self._bytes += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.end(complete=True)

    def end(self, *, complete: bool = False) -> None:
        if self._span is None:
            return
        self._span.set_attribute("kiteline.delivery.bytes", self._bytes)
        self._span.set_attribute("kiteline.delivery.complete", complete)
        self._span.end()
        self._span = None
