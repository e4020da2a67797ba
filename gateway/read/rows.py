"""The row read: scan the decided plan, transform batch by batch, stream, audit.

Called by the chokepoint with a :class:`ReadPlan` whose rows are already reserved. The
``data.query`` event is durable before the first byte; the closing ``data.read`` event
records the rows and the digest of the bytes, or ``complete: false`` and why.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from sqlalchemy import Engine

from audit import AuditError
from connectors import Cancellation, Connector, Scan, coalesced
from gateway import observability
from gateway.access import budgets
from gateway.access.decisions import Decider
from gateway.access.grant_usage import GrantUsage
from gateway.access.principals import Caller
from gateway.auditing.log import AuditLog, Prepared, RequestMeta
from gateway.errors import as_gateway_error, log_failure
from gateway.read.delivery import Delivery
from gateway.read.digest import AnswerDigest
from gateway.read.encoders import CSV, encoder_for, iter_encoded
from gateway.read.inflight import InflightReads
from gateway.read.plan import ReadPlan, scan_of
from gateway.read.query import CursorCodec
from gateway.read.result import ReadResult
from gateway.read.resume import consumed_by_page
from gateway.read.watch import ReadWatch
from gateway.read_ahead import read_ahead
from gateway.transforms.kanonymity import ClassIndex, take_kept
from gateway.transforms.profile import BatchTransformer

log = logging.getLogger(__name__)

# Rows per streamed slice: a cancelled read (offboarding, suspension) stops at the next
# one, and a cut read's event counts the rows of the slices that reached the client.
STREAM_SLICE_ROWS = 8192
# Answers of at most this many rows are built whole and sent with a Content-Length:
# streaming them costs a thread hop per chunk for no memory saved, and a failure is
# then a clean problem response rather than a cut stream.
BUFFERED_READ_ROWS = 1000
# Cells (rows x columns) per scanned and transformed batch. Per-batch work, such as
# building the hash table of a recipient's cached pseudonyms, is paid once per batch, so
# fewer, bigger batches are faster; a read holds about one scanned and one transformed
# batch at once, so the size is bounded in cells: 1,048,576 rows of 4 columns, fewer
# rows of a wider table.
SCAN_BATCH_CELLS = 4_194_304
MAX_SCAN_BATCH_ROWS = 1_048_576
MIN_SCAN_BATCH_ROWS = 64
# A store's small batches are joined up to the batch size, or until they hold this
# many bytes: wide text columns would make a batch of that many rows large.
SCAN_BATCH_BYTES = 16 * 1024 * 1024


def scan_batch_rows(limit: int, columns: int, released_share: float = 1.0) -> int:
    """Rows per scanned batch for a read of at most ``limit`` rows of ``columns``
    columns, where about ``released_share`` of the rows read may be returned. A page gets
    one batch that fills it, with a tenth to spare, and one row more to tell whether a
    next page exists: a suppressing (k-anonymous) read scans on until the page fills, and
    every row scanned past that is generalized and checked for nothing. A share under 1%
    counts as 1%: past that, batches are bounded by width alone."""
    by_width = min(MAX_SCAN_BATCH_ROWS, SCAN_BATCH_CELLS // max(columns, 1))
    expected = math.ceil((limit + 1) / max(released_share, 0.01) * 1.1)
    return max(MIN_SCAN_BATCH_ROWS, min(by_width, expected))


@dataclass(frozen=True, slots=True)
class RowRead:
    """A planned row read with what it runs on: the transformer and the k-anonymity
    index built for its plan, and what its budgets left (for the response headers)."""

    plan: ReadPlan
    caller: Caller
    meta: RequestMeta
    transformer: BatchTransformer
    suppress: ClassIndex | None
    left: Mapping[str, float | None]
    query_details: Mapping[str, Any]


@dataclass(frozen=True, eq=False)
class RowReader:
    """Runs a row :class:`ReadPlan`; its dependencies are given, never looked up."""

    engine: Engine
    connectors: Mapping[str, Connector]
    audit: AuditLog
    cursors: CursorCodec
    usage: GrantUsage
    inflight: InflightReads
    decider: Decider

    def scan(
        self, read: RowRead, cancellation: Cancellation, *, ahead: bool = False
    ) -> Iterator[pa.RecordBatch]:
        """The read's batches from its store; with ``ahead``, each read by a thread of
        its own while the caller works on the one before."""
        scan, batch_size = self._scan_of(read)
        connector = self.connectors[read.plan.store]
        batches = connector.scan(
            read.plan.table, scan, batch_size=batch_size, cancellation=cancellation
        )
        joined = coalesced(observability.scanned(connector, batches), batch_size, SCAN_BATCH_BYTES)
        return read_ahead(joined, name="kiteline-scan-read-ahead") if ahead else joined

    def reads_ahead(self, read: RowRead) -> bool:
        """Whether the read's stages (scan, transform, encode) run on threads of their
        own, each on the next batch while the one after it works on this one. That
        shortens a read of many batches by overlapping its stages on idle cores, but
        costs more processor time in all, and each hand-off between threads waits for
        the interpreter (docs/performance.md). So only for a streamed answer (never
        tried on the event loop) of more rows than one batch holds, and only while
        fewer reads are under way than the machine has cores, this one included."""
        if read.plan.limit <= BUFFERED_READ_ROWS or len(self.inflight) >= _cores():
            return False
        return read.plan.limit > self._scan_of(read)[1]

    @staticmethod
    def _scan_of(read: RowRead) -> tuple[Scan, int]:
        """What the store is asked for, and in batches of how many rows."""
        plan, transformer, suppress = read.plan, read.transformer, read.suppress
        spec = suppress.spec if suppress is not None else None
        scan = scan_of(
            plan,
            dictionary=transformer.dictionary_columns(spec.source_columns if spec else ()),
            # A bulk read maps each distinct identifier of a dictionary-encoded column
            # once, far cheaper than keying block after block (figures in
            # docs/performance.md).
            derived=transformer.derivations(pseudonyms=plan.limit <= BUFFERED_READ_ROWS)
            + ((suppress.derivation(),) if suppress is not None else ()),
            # Suppressed rows do not count: read on from the offset until the page fills.
            windowed=suppress is None,
        )
        batch_size = scan_batch_rows(
            plan.limit, len(scan.columns), suppress.released_share if suppress is not None else 1.0
        )
        return scan, batch_size

    def start(self, read: RowRead) -> ReadResult:
        plan = read.plan
        query = self.audit.prepare(
            "data.query",
            meta=read.meta,
            caller=read.caller,
            dataset=plan.dataset,
            module=plan.module,
            decision="allow",
            reasons=plan.reasons,
            purpose=read.query_details.get("purpose"),
            profile=plan.profile,
            grant_id=plan.grant_id,
            decision_basis=plan.decision_basis,
            columns=[c.name for c in plan.output],
            where=read.query_details.get("where"),
            order_by=read.query_details.get("order_by"),
            limit=plan.limit,
            offset=plan.offset,
            media_type=plan.media_type,
            rows_reserved=plan.rows_reserved,
            key_version=read.transformer.key_version,
            k=plan.k,
        )
        headers: dict[str, str] = {"X-Kiteline-Profile": plan.profile}
        headers.update(budgets.headers(dict(read.left)))
        if read.suppress is None:
            # Where the next page starts if this one fills (a CSV body has no room for a
            # cursor after its rows).
            headers["X-Kiteline-Resume-Cursor"] = self.cursors.encode(
                plan.offset + plan.limit, plan.fingerprint
            )
        elif plan.media_type == CSV:
            # Under k-suppression it depends on the rows kept: counted by a first pass.
            resume = self.resume_cursor(read)
            if resume is not None:
                headers["X-Kiteline-Resume-Cursor"] = resume
        small = plan.limit <= BUFFERED_READ_ROWS
        record = QueryRecord(self.audit, query, headers, deferred=small)
        self.usage.touch(plan.grant_id)
        cancellation = Cancellation()
        handle = self.inflight.add(read.caller.name, read.caller.org, cancellation)
        stream = RowStream(self, read, record, cancellation, handle, self.reads_ahead(read))
        batches: Iterator[pa.RecordBatch] = iter(())
        try:
            batches = self.scan(read, cancellation, ahead=stream.ahead)
            # Pull the first batch now, so a missing object or a dead store becomes a
            # clean problem response instead of a truncated stream.
            first = next(batches, None)
        except Exception as exc:
            # No byte left, but the read was decided and begun: it is recorded as
            # incomplete, like one that fails later (the chokepoint gives its reserved
            # rows back).
            stream.incomplete(as_gateway_error(exc).detail)
            stream.release(batches)
            raise
        except BaseException:
            stream.release(batches)
            raise
        delivery = None if small else stream.delivery(self.watch(read))
        chunks = stream.chunks(first, batches)
        return ReadResult(plan.media_type, chunks, headers, small=small, delivery=delivery)

    def resume_cursor(self, read: RowRead) -> str | None:
        """The next page's cursor of a suppressing read, before it runs (see resume)."""
        assert read.suppress is not None
        batches = self.scan(read, Cancellation())
        consumed = consumed_by_page(batches, read.suppress, read.plan.limit)
        if consumed is None:
            return None
        return self.cursors.encode(read.plan.offset + consumed, read.plan.fingerprint)

    def watch(self, read: RowRead) -> ReadWatch:
        return ReadWatch(
            self.engine,
            self.decider,
            caller=read.caller,
            dataset=read.plan.dataset,
            purpose=read.query_details.get("purpose"),
            profile=read.plan.profile,
            grant_id=read.plan.grant_id,
        )

    def settle(self, plan: ReadPlan, sent: int) -> None:
        budgets.settle_rows(self.engine, list(plan.charges), plan.rows_reserved, sent)


@dataclass(eq=False)
class RowStream:
    """One row read's answer, produced batch by batch as it is sent."""

    reader: RowReader
    read: RowRead
    record: QueryRecord
    cancellation: Cancellation
    handle: int
    # Whether its stages run on threads of their own (RowReader.reads_ahead).
    ahead: bool
    digest: AnswerDigest = field(init=False, default_factory=AnswerDigest)
    rows: int = field(init=False, default=0)
    # Source rows read past the offset; differs from rows when suppressing.
    consumed: int = field(init=False, default=0)
    more: bool = field(init=False, default=False)
    settled: bool = field(init=False, default=False)
    # Set for a streamed answer: the sender then records what was delivered.
    _delivery: Delivery | None = field(init=False, default=None)

    def delivery(self, watch: ReadWatch) -> Delivery:
        self._delivery = Delivery(
            cancellation=self.cancellation,
            watch=watch,
            record=self.record_delivered,
            settle=self.settle_delivered,
        )
        return self._delivery

    def transformed(
        self, first: pa.RecordBatch | None, rest: Iterator[pa.RecordBatch]
    ) -> Generator[pa.RecordBatch, None, None]:
        """The answer's rows, transformed, in slices: an offboarded principal's read
        stops at the next slice."""
        batches = self._windowed(first, rest)
        if self.ahead:
            # The next batch is transformed while this one is encoded and sent.
            batches = read_ahead(batches, name="kiteline-transform-read-ahead")
        try:
            for out in batches:
                for start in range(0, out.num_rows, STREAM_SLICE_ROWS):
                    self.cancellation.raise_if_cancelled()
                    piece = out.slice(start, STREAM_SLICE_ROWS)
                    self.rows += piece.num_rows
                    yield piece
        finally:
            batches.close()

    def _windowed(
        self, first: pa.RecordBatch | None, rest: Iterator[pa.RecordBatch]
    ) -> Generator[pa.RecordBatch, None, None]:
        """The scanned batches cut to the read's window (and its suppression), each
        transformed whole: per-batch work such as dictionary encoding is amortized."""
        limit, suppress = self.read.plan.limit, self.read.suppress
        taken = 0
        pending = [first] if first is not None else []
        for batch in _chain(pending, rest):
            if taken >= limit:
                if batch.num_rows:
                    # A row past the window proves a next page; stop reading there.
                    self.more = True
                    break
                continue
            if suppress is not None:
                kept, used, cut = take_kept(batch, suppress.kept(batch), limit - taken)
                self.more = self.more or cut
            else:
                used = min(batch.num_rows, limit - taken)
                self.more = self.more or used < batch.num_rows
                kept = batch.slice(0, used)
            self.consumed += used
            taken += kept.num_rows
            yield observability.transformed(self.read.transformer, kept)
            if self.more and taken >= limit:
                # The page is full and this batch proved a next one: reading the next
                # batch would only prove it again.
                break

    def chunks(
        self, first: pa.RecordBatch | None, rest: Iterator[pa.RecordBatch]
    ) -> Iterator[bytes]:
        if self._delivery is not None:
            return self._streamed(first, rest, self._delivery)
        return self._whole(first, rest)

    def _encoded(
        self, first: pa.RecordBatch | None, rest: Iterator[pa.RecordBatch]
    ) -> tuple[Any, Generator[bytes, None, None]]:
        plan = self.read.plan
        header = {"dataset": plan.dataset, "profile": plan.profile}
        encoder = encoder_for(plan.media_type, self.read.transformer.schema, header)
        return encoder, self._encoding(encoder, first, rest)

    def _encoding(
        self, encoder: Any, first: pa.RecordBatch | None, rest: Iterator[pa.RecordBatch]
    ) -> Generator[bytes, None, None]:
        rows = self.transformed(first, rest)
        try:
            yield from iter_encoded(encoder, rows)
        finally:
            # Stops the stages working ahead before the store's cursor is released.
            rows.close()

    def _next_cursor(self) -> str | None:
        if not self.more:
            return None
        plan = self.read.plan
        return self.reader.cursors.encode(plan.offset + self.consumed, plan.fingerprint)

    def _streamed(
        self, first: pa.RecordBatch | None, rest: Iterator[pa.RecordBatch], delivery: Delivery
    ) -> Iterator[bytes]:
        """The chunks of a streamed answer; the sender records what it delivered."""
        plan, meta = self.read.plan, self.read.meta
        encoder, chunks = self._encoded(first, rest)
        try:
            for chunk in chunks:
                delivery.produced(chunk, self.rows)
                yield chunk
            last = encoder.finish(self._next_cursor())
            delivery.produced(last, self.rows)
        except Exception as exc:
            log_failure(log, f"read of {plan.dataset} for request {meta.request_id} stopped", exc)
            raise
        finally:
            chunks.close()
            self.release(rest)
        yield last

    def _whole(
        self, first: pa.RecordBatch | None, rest: Iterator[pa.RecordBatch]
    ) -> Iterator[bytes]:
        """The chunks of an answer built whole before it is sent, recorded as built."""
        plan, meta = self.read.plan, self.read.meta
        encoder, chunks = self._encoded(first, rest)
        try:
            for chunk in chunks:
                self.digest.update(chunk)
                yield chunk
            next_cursor = self._next_cursor()
            self.settle_once()
            self.record_read(complete=True)
        except GeneratorExit:
            # The response was abandoned (client gone, server shutting down) mid-stream.
            self.settle_quietly()
            self.incomplete("the response was abandoned before it was complete")
            raise
        except Exception as exc:
            log_failure(log, f"read of {plan.dataset} for request {meta.request_id} stopped", exc)
            self.settle_quietly()
            self.incomplete(as_gateway_error(exc).detail)
            # Re-raising aborts the response before its closing chunk: the client can tell.
            raise
        finally:
            chunks.close()
            self.release(rest)
        yield encoder.finish(next_cursor)

    def release(self, rest: Iterator[pa.RecordBatch]) -> None:
        self.digest.close()
        self.reader.inflight.discard(self.handle)
        # Release the store cursor (a pooled connection for PostgreSQL) right away.
        close = getattr(rest, "close", None)
        if close is not None:
            close()

    def settle_delivered(self, rows: int) -> None:
        if not self.settled:
            self.reader.settle(self.read.plan, rows)
            self.settled = True

    def record_delivered(
        self,
        *,
        complete: bool,
        rows: int,
        digest: str,
        reasons: tuple[str, ...],
        bytes_delivered: int | None = None,
    ) -> None:
        """The closing ``data.read`` event: what left, and whether all of it did."""
        plan = self.read.plan
        sent: dict[str, Any] = {} if bytes_delivered is None else {"bytes": bytes_delivered}
        self.record.record_read(
            self.reader.audit.prepare(
                "data.read",
                meta=self.read.meta,
                caller=self.read.caller,
                dataset=plan.dataset,
                module=plan.module,
                decision="allow" if complete else "error",
                query_seq=self.record.seq,
                rows=rows,
                digest=digest,
                complete=complete,
                reasons=reasons,
                **sent,
            )
        )

    def settle_once(self) -> None:
        # A failure after the budget was settled (the audit append) must not give the
        # unfilled rows back a second time.
        if not self.settled:
            self.reader.settle(self.read.plan, self.rows)
            self.settled = True

    def settle_quietly(self) -> None:
        try:
            self.settle_once()
        except Exception:
            log.exception(
                "could not settle the row budget of request %s", self.read.meta.request_id
            )

    def record_read(self, *, complete: bool, reasons: tuple[str, ...] = ()) -> None:
        self.record_delivered(
            complete=complete,
            rows=self.rows,
            digest="sha256:" + self.digest.hexdigest(),
            reasons=reasons,
        )

    def incomplete(self, reason: str) -> None:
        try:
            self.record_read(complete=False, reasons=(reason,))
        except AuditError:
            log.error(
                "could not record the incomplete read of request %s", self.read.meta.request_id
            )


class QueryRecord:
    """A read's ``data.query`` event, always durable before the answer's first byte.

    A streamed answer writes it before the scan. A small answer is built whole before
    anything is sent, so its query event waits and is written together with its
    ``data.read`` event: one commit instead of two, and still before any byte leaves.
    ``headers`` gets the query event's sequence number once it is known."""

    def __init__(
        self, audit: AuditLog, query: Prepared, headers: dict[str, str], *, deferred: bool
    ) -> None:
        self._audit = audit
        self._headers = headers
        self._pending: Prepared | None = query if deferred else None
        self.seq: int | None = None if deferred else audit.append_prepared(query)
        if self.seq is not None:
            headers["X-Kiteline-Audit-Seq"] = str(self.seq)

    def record_read(self, read: Prepared) -> None:
        if self._pending is None:
            self._audit.append_prepared(read)
            return
        self.seq, _ = self._audit.append_linked(self._pending, read, link="query_seq")
        self._pending = None
        self._headers["X-Kiteline-Audit-Seq"] = str(self.seq)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _chain(first: list[pa.RecordBatch], rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield from first
    yield from rest
