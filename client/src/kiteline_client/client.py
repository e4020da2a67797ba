"""``Client``: governed reads, aggregates, grants and receipts over the gateway's HTTP API."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pyarrow as pa

from kiteline_client.arrow_stream import read_page
from kiteline_client.errors import InvalidRequest, TransportFailed, problem_error
from kiteline_client.profiles import load_profile
from kiteline_client.receipts import Receipt
from kiteline_client.retries import Retry, parse_retry_after

if TYPE_CHECKING:
    import os

log = logging.getLogger(__name__)
T = TypeVar("T")

ARROW = "application/vnd.apache.arrow.stream"
META_KEY = b"kiteline"
# The gateway's default per-request cap; a grant with a lower one is learnt from the
# gateway's refusal, which names the cap (see _Pager).
DEFAULT_PAGE_ROWS = 10_000

Filter = Mapping[str, Any] | Sequence[Any]

_BUDGET_HEADERS = {
    "rows_today": "x-kiteline-rows-remaining-today",
    "rows_total": "x-kiteline-rows-remaining-total",
    "epsilon": "x-kiteline-epsilon-remaining",
    "org_epsilon": "x-kiteline-org-epsilon-remaining",
}


@dataclass(frozen=True)
class Budget:
    """What remains of each capped budget after a request (None: not capped)."""

    rows_today: float | None = None
    rows_total: float | None = None
    epsilon: float | None = None
    org_epsilon: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Budget:
        values = {}
        for name, header in _BUDGET_HEADERS.items():
            raw = headers.get(header)
            values[name] = float(raw) if raw not in (None, "") else None
        return cls(**values)


@dataclass
class ReadInfo:
    """What the gateway said about a read: its audit events, profile and budgets."""

    audit_seqs: list[int] = field(default_factory=list)
    profile: str | None = None
    budget: Budget = field(default_factory=Budget)
    pages: int = 0
    rows: int = 0
    bytes: int = 0
    schema: pa.Schema | None = None  # of the extract, known after the first page

    def to_json(self) -> dict[str, Any]:
        return {
            "audit_seqs": self.audit_seqs,
            "profile": self.profile,
            "budget": self.budget.__dict__,
            "pages": self.pages,
            "rows": self.rows,
            "bytes": self.bytes,
        }


def read_info(table: pa.Table) -> ReadInfo:
    """The ``ReadInfo`` that ``Client.query`` stored in the table's schema metadata."""
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        return ReadInfo()
    data = json.loads(raw)
    return ReadInfo(
        audit_seqs=list(data["audit_seqs"]),
        profile=data["profile"],
        budget=Budget(**data["budget"]),
        pages=data["pages"],
        rows=data["rows"],
        bytes=data["bytes"],
    )


@dataclass(frozen=True)
class AggregateResult:
    table: pa.Table
    budget: Budget
    audit_seq: int | None

    def to_pandas(self) -> Any:
        return self.table.to_pandas()

    def to_polars(self) -> Any:
        return to_polars(self.table)


def to_polars(table: pa.Table) -> Any:
    import polars  # the ``polars`` extra

    return polars.from_arrow(table)


def _condition(item: Filter) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return dict(item)
    column, op, *value = item
    return {"column": column, "op": op, **({"value": value[0]} if value else {})}


def query_body(
    *,
    columns: Sequence[str] | None = None,
    filters: Sequence[Filter] = (),
    order_by: Sequence[str | Mapping[str, Any]] = (),
    purpose: str | None = None,
    profile: str | None = None,
) -> dict[str, Any]:
    """The JSON body of a row query. A filter is ``{"column", "op", "value"}`` or a
    tuple ``(column, op, value)``; ``order_by`` takes ``"col"`` or ``"-col"``."""
    body: dict[str, Any] = {"where": [_condition(f) for f in filters]}
    if columns is not None:
        body["columns"] = list(columns)
    if order_by:
        body["order_by"] = [o if isinstance(o, str) else dict(o) for o in order_by]
    if purpose is not None:
        body["purpose"] = purpose
    if profile is not None:
        body["profile"] = profile
    return body


class Client:
    """A connection to one gateway as one principal: ``Client(url, token)``.

    Reads go in pages of at most ``page_rows`` rows (each its own decision, audit
    record and budget charge) and follow the gateway's cursors until the grant's
    extract is complete. ``retry`` says how to wait out a 503 or a restart."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 60.0,
        retry: Retry | None = None,
        page_rows: int = DEFAULT_PAGE_ROWS,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.retry = retry or Retry()
        self.page_rows = page_rows
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "kiteline-client/0.1"},
            timeout=timeout,
            transport=transport,
        )

    @classmethod
    def from_profile(cls, path: str | os.PathLike[str] | None = None, **options: Any) -> Client:
        """A client for the gateway and token named by a profile file (see profiles)."""
        profile = load_profile(path)
        return cls(profile.url, profile.resolve_token(), **options)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The whole response to one request (see ``_exchange``)."""
        return self._exchange(method, path, _read_whole, **kwargs)

    def _exchange(
        self,
        method: str,
        path: str,
        consume: Callable[[httpx.Response], T],
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        accept: str = "application/json",
        safe: bool = True,
    ) -> T:
        """Send one request and ``consume`` its streamed answer, waiting out "not now"
        answers; raise the typed problem.

        ``safe`` requests (reads) are retried on a 503, a 429 with a short Retry-After
        and any transport failure, also one that cuts the answer short; others only when
        the connection was never made, so a write is never sent twice."""
        attempt = 0
        while True:
            request = self._http.build_request(
                method,
                path,
                json=body,
                params={k: v for k, v in (params or {}).items() if v is not None},
                headers={"Accept": accept},
            )
            try:
                response = self._http.send(request, stream=True)
                try:
                    if response.status_code < 400:
                        return consume(response)
                    response.read()
                finally:
                    response.close()
            except httpx.TransportError as exc:
                retryable = safe or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                wait = self.retry.wait_for(None, None, attempt) if retryable else None
                if wait is None:
                    raise TransportFailed(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
                log.info("%s %s failed (%s); retrying in %.2fs", method, path, exc, wait)
            else:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                # A write that reached the gateway is never sent again.
                wait = (
                    self.retry.wait_for(response.status_code, retry_after, attempt)
                    if safe
                    else None
                )
                if wait is None:
                    raise problem_error(response.status_code, _problem(response), retry_after)
                log.info(
                    "%s %s answered %d; retrying in %.2fs",
                    method,
                    path,
                    response.status_code,
                    wait,
                )
            self._sleep(wait)
            attempt += 1

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # -- reads -----------------------------------------------------------------------

    def iter_pages(
        self,
        dataset: str,
        *,
        columns: Sequence[str] | None = None,
        filters: Sequence[Filter] = (),
        order_by: Sequence[str | Mapping[str, Any]] = (),
        limit: int | None = None,
        purpose: str | None = None,
        profile: str | None = None,
        info: ReadInfo | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of the whole extract (or of its first ``limit`` rows).

        Memory holds one page at a time. ``info``, when given, is filled in as pages
        arrive (audit sequence numbers, profile, budgets, rows and bytes)."""
        base = query_body(
            columns=columns, filters=filters, order_by=order_by, purpose=purpose, profile=profile
        )
        info = info if info is not None else ReadInfo()
        cursor: str | None = None
        while True:
            wanted = self.page_rows if limit is None else min(self.page_rows, limit - info.rows)
            if wanted <= 0:
                return
            body = {**base, "limit": wanted, **({"cursor": cursor} if cursor else {})}
            try:
                # A page is decoded whole before any of its batches is handed out: one cut
                # short is then retried like any failed read, and no batch comes twice.
                page = self._exchange(
                    "POST", f"/v1/datasets/{dataset}/query", read_page, body=body, accept=ARROW
                )
            except InvalidRequest as exc:
                # The grant caps rows per request below the page size: use its cap.
                cap = exc.problem.get("max_rows")
                if isinstance(cap, int) and 0 < cap < self.page_rows:
                    self.page_rows = cap
                    continue
                raise
            except pa.ArrowInvalid as exc:
                raise TransportFailed(f"the answer for {dataset} broke off: {exc}") from exc
            info.pages += 1
            info.bytes += page.nbytes
            seq = page.headers.get("x-kiteline-audit-seq")
            if seq is not None:
                info.audit_seqs.append(int(seq))
            info.profile = page.headers.get("x-kiteline-profile", info.profile)
            info.budget = Budget.from_headers(page.headers)
            info.schema = page.schema
            cursor = page.cursor
            for batch in page.batches:
                info.rows += batch.num_rows
                yield batch
            if cursor is None:
                return

    def iter_batches(self, dataset: str, **query: Any) -> Iterator[pa.RecordBatch]:
        """Stream the extract as Arrow record batches, following cursors (see iter_pages)."""
        return self.iter_pages(dataset, **query)

    def query(self, dataset: str, **query: Any) -> pa.Table:
        """The whole extract as one ``pyarrow.Table``.

        Keyword arguments: ``columns``, ``filters``, ``order_by``, ``limit``,
        ``purpose``, ``profile``. ``read_info(table)`` gives the audit sequence
        numbers, profile and remaining budgets the gateway sent."""
        info = ReadInfo()
        batches = list(self.iter_pages(dataset, info=info, **query))
        table = pa.Table.from_batches(batches, schema=info.schema)
        metadata = dict(table.schema.metadata or {})
        metadata[META_KEY] = json.dumps(info.to_json()).encode()
        return table.replace_schema_metadata(metadata)

    def query_pandas(self, dataset: str, **query: Any) -> Any:
        return self.query(dataset, **query).to_pandas()

    def query_polars(self, dataset: str, **query: Any) -> Any:
        return to_polars(self.query(dataset, **query))

    def aggregate(
        self,
        dataset: str,
        *,
        group_by: Sequence[str] = (),
        aggregates: Sequence[Mapping[str, Any]] = ({"fn": "count"},),
        filters: Sequence[Filter] = (),
        epsilon: float | None = None,
        purpose: str | None = None,
    ) -> AggregateResult:
        """An aggregate (counts, sums, averages by group), noised under differential
        privacy where the profile says so; ``budget`` tells what epsilon remains."""
        body = query_body(filters=filters, purpose=purpose)
        body["group_by"] = list(group_by)
        body["aggregates"] = [dict(a) for a in aggregates]
        if epsilon is not None:
            body["epsilon"] = epsilon
        response = self._request("POST", f"/v1/datasets/{dataset}/query", body=body, accept=ARROW)
        table = pa.ipc.open_stream(pa.py_buffer(response.content)).read_all()
        seq = response.headers.get("x-kiteline-audit-seq")
        return AggregateResult(
            table, Budget.from_headers(response.headers), int(seq) if seq else None
        )

    # -- catalog, grants, decisions --------------------------------------------------

    def me(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/v1/me")
        return result

    def datasets(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", "/v1/datasets")["datasets"]
        return result

    def dataset(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/v1/datasets/{name}")
        return result

    def request_grant(
        self, dataset: str, *, profile: str, days: int, purpose: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Ask for a grant on ``dataset`` (other fields: ``columns``, ``org``, ...)."""
        body = {"dataset": dataset, "profile": profile, "days": days, "purpose": purpose, **fields}
        result: dict[str, Any] = self._json("POST", "/v1/grants", body=body, safe=False)
        return result

    def grants(self, status: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", "/v1/grants", params={"status": status})[
            "grants"
        ]
        return result

    def grant(self, grant_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/v1/grants/{grant_id}")
        return result

    def _decide(self, grant_id: int, verb: str, reason: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "POST", f"/v1/grants/{grant_id}/{verb}", body={"reason": reason}, safe=False
        )
        return result

    def approve(self, grant_id: int, reason: str) -> dict[str, Any]:
        return self._decide(grant_id, "approve", reason)

    def deny(self, grant_id: int, reason: str) -> dict[str, Any]:
        return self._decide(grant_id, "deny", reason)

    def revoke(self, grant_id: int, reason: str) -> dict[str, Any]:
        return self._decide(grant_id, "revoke", reason)

    def explain(self, dataset: str, **fields: Any) -> dict[str, Any]:
        """Why the policy would allow or refuse a read (``purpose``, ``profile``, ...)."""
        result: dict[str, Any] = self._json(
            "POST", "/v1/decisions/explain", body={"dataset": dataset, **fields}
        )
        return result

    # -- receipts --------------------------------------------------------------------

    def public_key(self) -> str:
        """The audit log's checkpoint key. Pin it once, out of band; do not fetch it
        anew to check a receipt, or a forged gateway could hand out its own."""
        vkey: str = self._json("GET", "/v1/audit/public-key")["vkey"]
        return vkey

    def receipt(self, seq: int) -> Receipt:
        """The receipt of one of the caller's own audit events (e.g. a read's seq)."""
        return Receipt.from_json(self._json("GET", f"/v1/audit/events/{seq}/proof"))


def _read_whole(response: httpx.Response) -> httpx.Response:
    response.read()
    return response


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    return {"status": response.status_code, "title": response.reason_phrase, "detail": ""}


__all__ = [
    "AggregateResult",
    "Budget",
    "Client",
    "ReadInfo",
    "query_body",
    "read_info",
    "to_polars",
]
