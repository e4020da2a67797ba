"""A loopback OTLP/HTTP traces receiver for the tests: it keeps what it is sent.

It answers ``POST /v1/traces`` as a collector does, keeps each request body as sent
(so a test can search the raw export for what must never be in it) and decodes the
spans with the protocol's own generated classes (opentelemetry-proto).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    bodies: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spans(self) -> list[Any]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        found = []
        with self.lock:
            bodies = list(self.bodies)
        for body in bodies:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    found.extend((resource.resource, span) for span in scope.spans)
        return found

    def wait_for(self, done: Callable[[list[Any]], bool], timeout: float = 30) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if done(spans):
                return spans
            if time.monotonic() > deadline:
                names = [span.name for _, span in spans]
                raise AssertionError(f"the receiver got only {names}")
            time.sleep(0.1)


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, Received]]:
    """Yield the traces URL of a receiver on a free loopback port, and what it got."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the handler's protocol names it)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ok = self.path == "/v1/traces"
            if ok:
                with received.lock:
                    received.bodies.append(body)
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
