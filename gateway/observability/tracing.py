"""OpenTelemetry spans of kiteline's own making, exported over OTLP/HTTP.

Off unless ``tracing.enabled``; then the ``otel`` extra must be installed, or the
server refuses to start (fail closed: an operator who asked for traces must not get a
silent no-op). FastAPI's own instrumentation stays off (see ``gateway.http.app``): the
spans are built here, so what they carry is chosen here, attribute by attribute.

What a span may carry: route templates, statuses, request ids, dataset names, store
kinds, row and byte counts, decision results and their reasons, audit actions. Never a
token, a filter literal, a row value or a principal's secret; an exception is recorded
by its type alone, since messages may quote a caller's values.

The provider is the app's own, not OpenTelemetry's global one: several apps in one
process (tests) each start and stop theirs. The core's hooks use whichever app started
last, through one module variable set by :func:`start`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

from gateway.config import ConfigError, TracingSection

log = logging.getLogger(__name__)

T = TypeVar("T")
EXTRA_MISSING = (
    "tracing.enabled needs OpenTelemetry, which is not installed: install the server "
    "with its otel extra (pip install 'kiteline[otel]') or turn tracing off"
)


class NoSpan:
    """What a hook gets while tracing is off: attributes go nowhere."""

    def set(self, **_attributes: Any) -> None:
        return None


class LiveSpan:
    """A recording span that takes only the attributes a hook names (``kiteline.*``)."""

    __slots__ = ("_span",)

    def __init__(self, span: Any) -> None:
        self._span = span

    def set(self, **attributes: Any) -> None:
        for key, value in attributes.items():
            if value is not None:
                self._span.set_attribute(f"kiteline.{key}", value)


NO_SPAN = NoSpan()
_OFF: AbstractContextManager[NoSpan] = nullcontext(NO_SPAN)
_tracer: Any = None


class Tracing:
    """The app's span pipeline: a provider batching spans to the OTLP exporter."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("kiteline")

    def shutdown(self) -> None:
        """Export what is queued and stop; the hooks go quiet again."""
        global _tracer
        if _tracer is self.tracer:
            _tracer = None
        self.provider.shutdown()


def ensure_available(section: TracingSection) -> None:
    """Raise ConfigError when tracing is asked for and the otel extra is missing."""
    if not section.enabled:
        return
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as exc:
        raise ConfigError(EXTRA_MISSING) from exc


def start(section: TracingSection) -> Tracing | None:
    """Start exporting spans as ``section`` says; None when tracing is off."""
    global _tracer
    ensure_available(section)
    if not section.enabled:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": section.service_name}),
        # A request that arrives inside a sampled trace stays in it; new traces are
        # kept at the configured ratio.
        sampler=ParentBased(TraceIdRatioBased(section.sample_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=section.endpoint)))
    tracing = Tracing(provider)
    _tracer = tracing.tracer
    log.info("exporting traces to %s", section.endpoint)
    return tracing


def tracer() -> Any:
    """The running app's tracer, or None while tracing is off."""
    return _tracer


def span(name: str, **attributes: Any) -> AbstractContextManager[NoSpan | LiveSpan]:
    """A child of the current span around a step of the request (current inside it)."""
    active = _tracer
    if active is None:
        return _OFF
    return _live(active, name, attributes)


@contextmanager
def _live(active: Any, name: str, attributes: dict[str, Any]) -> Iterator[LiveSpan]:
    with active.start_as_current_span(
        name, record_exception=False, set_status_on_exception=False
    ) as current:
        live = LiveSpan(current)
        live.set(**attributes)
        try:
            yield live
        except BaseException as exc:
            failed(current, exc)
            raise


def failed(current: Any, exc: BaseException) -> None:
    """Mark ``current`` as failed, naming the exception's type only."""
    from opentelemetry.trace import Status, StatusCode

    current.set_status(Status(StatusCode.ERROR, type(exc).__name__))


def started() -> int:
    """The clock for a span recorded once its step is done (see ``decided``); 0 while
    tracing is off."""
    return time.time_ns() if _tracer is not None else 0


def decided(decision: Any, *, dataset: str, started: int) -> None:
    """The decision span, from ``started`` to now: its result and the rule that made it
    (its leading reason, the text the caller's answer and the audit log give)."""
    active = _tracer
    if active is None:
        return
    obligations = decision.obligations
    attributes = {
        "kiteline.dataset": dataset,
        "kiteline.decision.result": "allow" if decision.allowed else "deny",
        "kiteline.decision.rule": decision.reasons[0] if decision.reasons else None,
        "kiteline.decision.profile": obligations.profile if obligations is not None else None,
        "kiteline.decision.grant_id": obligations.grant_id if obligations is not None else None,
    }
    current = active.start_span(
        "kiteline.decision",
        start_time=started,
        attributes={k: v for k, v in attributes.items() if v is not None},
    )
    current.end()


def scanned(connector: object, batches: Iterator[T]) -> Iterator[T]:
    """``batches`` of a store scan, in a span that counts their rows until the scan ends
    (read out, failed or closed: closing it closes the store's cursor too)."""
    active = _tracer
    if active is None:
        return batches
    # A connector is named by its module (connectors.spark); a wrapper says what it wraps.
    kind = getattr(connector, "kind", None) or type(connector).__module__.rsplit(".", 1)[-1]
    return _scanned(active, str(kind), batches)


def _scanned(active: Any, kind: str, batches: Iterator[Any]) -> Iterator[Any]:
    # Not made current: the scan is read a batch at a time from other threads' contexts.
    current = active.start_span("kiteline.store.scan", attributes={"kiteline.store.kind": kind})
    rows = 0
    try:
        for batch in batches:
            rows += batch.num_rows
            yield batch
    except GeneratorExit:
        current.set_attribute("kiteline.store.closed_early", True)
        raise
    except BaseException as exc:
        failed(current, exc)
        raise
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
        current.set_attribute("kiteline.store.rows", rows)
        current.end()


def transformed(transform: Callable[[Any], T], batch: Any) -> T:
    """``transform(batch)``: one batch through the read's obligations, in a span."""
    if _tracer is None:
        return transform(batch)
    with span("kiteline.transform", **{"transform.rows_in": batch.num_rows}) as traced:
        out = transform(batch)
        traced.set(**{"transform.rows_out": getattr(out, "num_rows", None)})
        return out
