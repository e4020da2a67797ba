"""Signals about the gateway's own work for operators: OpenTelemetry traces.

The core calls the hooks of :mod:`gateway.observability.tracing`; they cost nothing
while tracing is off. The HTTP wing opens the request span around them.
"""

from gateway.observability.tracing import (
    Tracing,
    decided,
    ensure_available,
    scanned,
    span,
    start,
    started,
    transformed,
)

__all__ = [
    "Tracing",
    "decided",
    "ensure_available",
    "scanned",
    "span",
    "start",
    "started",
    "transformed",
]
