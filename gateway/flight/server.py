"""The Flight server: authentication, tickets and governed streams, nothing decided here.

Each call carries ``authorization: Bearer <API key>`` as a gRPC header, checked by
``Gateway.authenticate`` exactly as the HTTP edge checks it (failures are audited).
``GetFlightInfo`` takes a command descriptor, JSON ``{"dataset": NAME, "query": {...}}``
with the body of ``POST /v1/datasets/{name}/query``, and returns one endpoint whose
ticket the chokepoint allowed (``Gateway.flight_ticket``). ``DoGet`` redeems a ticket
through ``Gateway.flight_read``: the chokepoint decides again, reserves the budget,
writes ``data.query``, and the closing ``data.read`` event records the rows and the
SHA-256 of the Arrow IPC stream handed to Flight, as for HTTP.

Plaintext gRPC on a loopback address only (the configuration refuses any other).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.flight as flight

from gateway.access.principals import Caller
from gateway.auditing.log import RequestMeta
from gateway.config import FlightSection
from gateway.errors import as_gateway_error, log_failure
from gateway.flight.errors import flight_error
from gateway.read.delivery import Delivery
from gateway.read.result import ReadResult, close_quietly
from gateway.service import Gateway

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.5
USER_AGENT = "arrow-flight"


def new_request_id() -> str:
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


class _Headers(flight.ServerMiddleware):
    def __init__(self, authorization: str | None) -> None:
        self.authorization = authorization


class _HeadersFactory(flight.ServerMiddlewareFactory):
    """Keeps the call's ``authorization`` header for the handler, which authenticates."""

    def start_call(self, info: Any, headers: dict[str, list[str]]) -> _Headers:  # noqa: ARG002
        values = headers.get("authorization") or headers.get("Authorization") or []
        return _Headers(values[0] if values else None)


class KitelineFlight(flight.FlightServerBase):
    def __init__(self, gateway: Gateway, section: FlightSection) -> None:
        location = f"grpc+tcp://{section.host}:{section.port}"
        super().__init__(location, middleware={"headers": _HeadersFactory()})
        self._gateway = gateway
        self._location = flight.Location(f"grpc+tcp://{section.host}:{self.port}")

    # -- the calls -------------------------------------------------------------------

    def get_flight_info(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.FlightInfo:
        meta = _meta(context)
        with _mapped(meta):
            caller = self._authenticate(context, meta)
            if descriptor.descriptor_type != flight.DescriptorType.CMD:
                command = b""  # refused (and audited) as an invalid command
            else:
                command = bytes(descriptor.command)
            issued = self._gateway.flight_ticket(caller, command, meta)
        endpoint = flight.FlightEndpoint(issued.ticket, [self._location])
        about = {
            "dataset": issued.dataset,
            "profile": issued.profile,
            "expires_at": issued.expires,
            "audit_seq": issued.audit_seq,
        }
        # The schema travels with the stream (DoGet): it depends on the plan.
        return flight.FlightInfo(
            pa.schema([]), descriptor, [endpoint], -1, -1, app_metadata=orjson.dumps(about)
        )

    def do_get(
        self, context: flight.ServerCallContext, ticket: flight.Ticket
    ) -> flight.FlightDataStream:
        meta = _meta(context)
        with _mapped(meta):
            caller = self._authenticate(context, meta)
            result = self._gateway.flight_read(caller, bytes(ticket.ticket), meta)
            stream = GovernedBatches(result, context, meta)
            schema = stream.open()
            batches = stream.started()
        return flight.GeneratorStream(schema, batches)

    def list_flights(self, context: flight.ServerCallContext, criteria: bytes) -> Iterator[Any]:  # noqa: ARG002
        # Datasets are listed by GET /v1/datasets, which decides what each caller sees.
        return iter(())

    def _authenticate(self, context: flight.ServerCallContext, meta: RequestMeta) -> Caller:
        headers = context.get_middleware("headers")
        authorization = headers.authorization if headers is not None else None
        return self._gateway.authenticate(authorization, meta)


class _mapped:
    """Gateway errors leave as Flight errors, the rest as a generic internal error."""

    def __init__(self, meta: RequestMeta) -> None:
        self._meta = meta

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if exc is None or isinstance(exc, flight.FlightError) or not isinstance(exc, Exception):
            return False
        error = as_gateway_error(exc)
        if error is not exc:
            log_failure(log, f"Flight request {self._meta.request_id} failed", exc)
        raise flight_error(error, self._meta.request_id) from None


def _meta(context: flight.ServerCallContext) -> RequestMeta:
    return RequestMeta(request_id=new_request_id(), client=context.peer(), user_agent=USER_AGENT)


# -- the governed stream -------------------------------------------------------------


class _ChunkFile:
    """The read's Arrow IPC chunks as a file the IPC reader reads (no copy: slices of the
    chunks); remembers the chunks the reader has used up, for the delivery."""

    closed = False

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._current = memoryview(b"")
        self._chunk: bytes = b""
        self.used: deque[bytes] = deque()

    def read(self, size: int = -1) -> Any:
        while not self._current:
            if self._chunk:
                self.used.append(self._chunk)
            chunk = next(self._chunks, None)
            if chunk is None:
                self._chunk = b""
                return b""
            self._chunk, self._current = chunk, memoryview(chunk)
        if size < 0 or size >= len(self._current):
            piece, self._current = self._current, memoryview(b"")
        else:
            piece, self._current = self._current[:size], self._current[size:]
        return piece

    def finish(self) -> None:
        if self._chunk:
            self.used.append(self._chunk)
            self._chunk = b""

    # What pyarrow asks a Python file for.
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


@dataclass(eq=False)
class GovernedBatches:
    """One governed read's record batches for Flight, with what HTTP's sender does:
    each chunk reported to the delivery once handed to Flight, a watch on revocation
    every half second, and the read finished once (``data.read``)."""

    result: ReadResult
    context: flight.ServerCallContext
    meta: RequestMeta

    def open(self) -> pa.Schema:
        chunks = self.result.chunks
        if self.result.small:
            # Built whole (and recorded) before anything leaves, as over HTTP.
            chunks = iter([b"".join(chunks)])
        self._file = _ChunkFile(chunks)
        self._reader = pa.ipc.open_stream(self._file)
        return self._reader.schema

    def started(self) -> Iterator[pa.RecordBatch | None]:
        """The batches, their generator already started: Flight may drop a stream
        before pulling from it, and closing a started generator still finishes the read
        (its data.read event, its unsent rows given back)."""
        batches = self.batches()
        next(batches)
        return batches

    def batches(self) -> Iterator[pa.RecordBatch | None]:
        """A first ``None`` (see ``started``), then the batches."""
        delivery = self.result.delivery
        if delivery is None:
            yield None
            yield from self._reader
            return
        stop = threading.Event()
        reason: list[str | None] = [None]
        watch = threading.Thread(
            target=self._watch, args=(delivery, stop, reason), daemon=True, name="flight-watch"
        )
        watch.start()
        complete = False
        try:
            yield None
            for batch in self._reader:
                self._hand_over(delivery)
                if reason[0] is None:
                    reason[0] = delivery.cancelled()
                if reason[0] is None and self.context.is_cancelled():
                    reason[0] = "the client went away before the answer was complete"
                if reason[0] is not None:
                    raise flight.FlightUnauthorizedError(reason[0])
                yield batch
            self._file.finish()
            self._hand_over(delivery)
            complete = True
        except GeneratorExit:
            reason[0] = reason[0] or "the client went away before the answer was complete"
            raise
        except flight.FlightError:
            raise
        except Exception as exc:
            error = as_gateway_error(exc)
            reason[0] = reason[0] or error.detail
            log_failure(log, f"Flight read {self.meta.request_id} stopped", exc)
            raise flight_error(error, self.meta.request_id) from None
        finally:
            stop.set()
            close_quietly(self.result.chunks)
            delivery.finish(complete=complete, reason=reason[0])

    def _hand_over(self, delivery: Delivery) -> None:
        # The chunks the batches so far were read from: Flight took them.
        while self._file.used:
            delivery.handed_over(self._file.used.popleft())

    @staticmethod
    def _watch(delivery: Delivery, stop: threading.Event, reason: list[str | None]) -> None:
        while not stop.wait(WATCH_INTERVAL_S):
            try:
                found = delivery.stop_reason()
            except Exception:
                log.exception("the watch of a Flight read failed; the read is stopped")
                found = "the read's access could not be checked"
            if found is not None:
                reason[0] = reason[0] or found
                return


# -- running it beside the HTTP API --------------------------------------------------


@dataclass(eq=False)
class FlightEndpoint:
    server: KitelineFlight
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.port)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


def start_flight(gateway: Gateway, section: FlightSection) -> FlightEndpoint:
    """Serve Flight for ``gateway`` in a thread; stop it with ``.stop()``."""
    server = KitelineFlight(gateway, section)
    thread = threading.Thread(target=server.serve, name="kiteline-flight", daemon=True)
    thread.start()
    log.info("Arrow Flight listening on grpc+tcp://%s:%d (plaintext)", section.host, server.port)
    return FlightEndpoint(server, thread)
