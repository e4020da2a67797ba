"""The one chokepoint: authorize -> plan -> scan -> transform -> audit.

Routes parse HTTP and call this service; nothing else decides who may see what. Every
outcome after authentication (allowed, denied, rejected, failed) is appended to the
audit log, and no data leaves unless the allow was recorded first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pyarrow as pa
from pydantic import ValidationError
from sqlalchemy import Engine

from audit.errors import AuditError
from audit.redaction import Redactor
from connectors.base import Cancellation, Connector, Filter
from gateway import principals
from gateway.audit_log import AuditLog, RequestMeta
from gateway.config import Config
from gateway.database import create_state_engine, migrate
from gateway.decisions import Decider
from gateway.encoders import encoder_for, iter_encoded, negotiate
from gateway.errors import (
    AccessDenied,
    GatewayError,
    InvalidRequest,
    NotFound,
    Unauthenticated,
    Unavailable,
    as_gateway_error,
)
from gateway.keyring import Keyring
from gateway.principals import Caller
from gateway.query import Condition, CursorCodec, QueryRequest, _typed_filter, plan_rows
from gateway.stores import build_connectors, table_of
from gateway.transforms.profile import BatchTransformer
from gateway.views import DatasetView, build_view
from policies.decision import Decision
from policies.profiles import Profile

log = logging.getLogger(__name__)

SCHEMA_TTL_S = 30.0
T = TypeVar("T")
MAX_QUERY_BYTES = 256 * 1024
AUDIT_READERS = frozenset({"officer"})


@dataclass
class ReadResult:
    media_type: str
    chunks: Iterator[bytes]
    headers: dict[str, str]


def _validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
        for e in exc.errors()
    ]


class Gateway:
    """The governed-read service, built from the configuration."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        connectors: dict[str, Connector],
        keyring: Keyring,
        audit: AuditLog,
    ) -> None:
        self.config = config
        self.engine = engine
        self.connectors = connectors
        self.keyring = keyring
        self.audit = audit
        self.decider = Decider(engine, config)
        self.cursors = CursorCodec(keyring.cursor_key)
        self._schemas: dict[str, tuple[float, pa.Schema]] = {}
        self._schema_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Config, *, policy_version: str) -> Gateway:
        engine = create_state_engine(config.state_url)
        migrate(engine)
        keyring = Keyring.from_config(config)
        audit = AuditLog(
            engine,
            Redactor(keyring.audit_redaction_key),
            policy_version=policy_version,
            timeout_s=config.gateway.audit_timeout_s,
        )
        return cls(config, engine, build_connectors(config), keyring, audit)

    def close(self) -> None:
        for connector in self.connectors.values():
            connector.close()
        self.engine.dispose()

    # -- authentication ------------------------------------------------------------

    def authenticate(self, authorization: str | None, meta: RequestMeta) -> Caller:
        """The caller behind an ``Authorization: Bearer`` header; failures are audited."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            reason = "missing bearer token" if not authorization else "not a bearer token"
            self._audit_auth_failure(meta, reason, None)
            raise Unauthenticated("send 'Authorization: Bearer <token>' with a kiteline API key")
        outcome = principals.authenticate(self.engine, token)
        if isinstance(outcome, str):
            self._audit_auth_failure(meta, outcome, principals.key_id_of(token))
            raise Unauthenticated("the token is invalid, revoked, or its principal is not active")
        return outcome

    def _audit_auth_failure(self, meta: RequestMeta, reason: str, key_id: str | None) -> None:
        # The token itself never reaches the log; the key id is public by design.
        try:
            self.audit.append(
                "auth.failed", meta=meta, decision="deny", reasons=[reason], key_id=key_id
            )
        except AuditError as exc:
            raise Unavailable("the audit log could not record this request") from exc

    # -- who reads the audit log ---------------------------------------------------

    def authorize_audit(
        self,
        caller: Caller,
        meta: RequestMeta,
        action: str,
        *,
        owner: str | None = None,
        record: bool = False,
        **details: Any,
    ) -> None:
        """Officers read the audit log (and no data); anyone else only proofs of its own
        events. Refusals are audited, and so are officers' searches when ``record``."""
        if caller.kind not in AUDIT_READERS and (owner is None or owner != caller.name):
            self._audit_or_503(
                "audit.denied",
                meta=meta,
                caller=caller,
                decision="deny",
                attempted=action,
                reasons=["only security officers read the audit log; others only their own events"],
            )
            raise AccessDenied(
                "only security officers read the audit log; a caller may fetch the proofs "
                "of its own events only",
                rule="audit-readers",
            )
        if record:
            self._audit_or_503(action, meta=meta, caller=caller, decision="allow", **details)

    def _audit_or_503(self, action: str, **fields: Any) -> None:
        try:
            self.audit.append(action, **fields)
        except AuditError as exc:
            raise Unavailable("the audit log could not record this request") from exc

    # -- catalog -----------------------------------------------------------------------

    def schema(self, name: str) -> pa.Schema:
        now = time.monotonic()
        cached = self._schemas.get(name)
        if cached is not None and now - cached[0] < SCHEMA_TTL_S:
            return cached[1]
        dataset = self.config.datasets[name]
        schema = self.connectors[dataset.store].schema(table_of(dataset))
        with self._schema_lock:
            self._schemas[name] = (now, schema)
        return schema

    def view(
        self, name: str, profile: Profile, columns: tuple[str, ...] | None = None
    ) -> DatasetView:
        return build_view(name, self.config.datasets[name], self.schema(name), profile, columns)

    def _lookup(self, name: str) -> None:
        if name not in self.config.datasets:
            raise NotFound(f"no dataset named {name!r}", dataset=name)

    def _describe(self, name: str, decision: Decision) -> dict[str, Any]:
        assert decision.obligations is not None
        dataset = self.config.datasets[name]
        view = self.view(name, decision.obligations.profile, decision.obligations.columns)
        return {
            "name": name,
            "module": dataset.module,
            "description": dataset.description,
            "profile": view.profile,
            "grant_id": decision.obligations.grant_id,
            "purpose": decision.obligations.purpose,
            "columns": [c.describe() for c in view.returned]
            if view.profile != "aggregate"
            else [c.describe() for c in view.columns.values() if c.treatment != "drop"],
        }

    def list_datasets(
        self, caller: Caller, meta: RequestMeta, purpose: str | None = None
    ) -> list[dict[str, Any]]:
        at = datetime.now(UTC)
        visible = []
        for name in self.config.datasets:
            decision = self.decider.decide(
                caller=caller, dataset=name, at=at, purpose=purpose, catalog=True
            )
            if decision.allowed:
                visible.append(self._describe(name, decision))
        self.audit.append(
            "catalog.list",
            meta=meta,
            caller=caller,
            decision="allow",
            datasets=[d["name"] for d in visible],
        )
        return visible

    def describe(
        self, caller: Caller, name: str, meta: RequestMeta, purpose: str | None = None
    ) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            self._lookup(name)
            decision = self.decider.decide(
                caller=caller, dataset=name, at=datetime.now(UTC), purpose=purpose, catalog=True
            )
            if not decision.allowed:
                raise AccessDenied(decision.reasons[0], reasons=list(decision.reasons))
            description = self._describe(name, decision)
            self.audit.append(
                "catalog.describe",
                meta=meta,
                caller=caller,
                dataset=name,
                module=self.config.datasets[name].module,
                decision="allow",
                reasons=decision.reasons,
                profile=description["profile"],
            )
            return description

        return self._audited(run, caller=caller, meta=meta, dataset=name, action="catalog.describe")

    # -- the governed read ---------------------------------------------------------

    def _audited(
        self,
        run: Callable[[], T],
        *,
        caller: Caller,
        meta: RequestMeta,
        dataset: str | None,
        action: str,
        details: Callable[[], dict[str, Any]] | None = None,
    ) -> T:
        """Run ``run()``; record any refusal or failure before it reaches the client."""
        try:
            return run()
        except Exception as exc:
            error = as_gateway_error(exc)
            if isinstance(exc, AuditError):
                raise error from exc
            if isinstance(error, AccessDenied):
                kind, decision = "data.denied", "deny"
            elif error.status < 500:
                kind, decision = "request.rejected", "reject"
            else:
                kind, decision = "request.failed", "error"
            module = (
                self.config.datasets[dataset].module if dataset in self.config.datasets else None
            )
            try:
                self.audit.append(
                    kind,
                    meta=meta,
                    caller=caller,
                    dataset=dataset,
                    module=module,
                    decision=decision,
                    reasons=[error.detail],
                    attempted=action,
                    status=error.status,
                    **(details() if details else {}),
                )
            except AuditError as audit_exc:
                raise Unavailable("the audit log could not record this request") from audit_exc
            if error is exc:
                raise
            raise error from exc

    def _redacted_where(self, request: QueryRequest | None) -> list[dict[str, Any]]:
        if request is None:
            return []
        return [
            {"column": c.column, "op": c.op, "value": self.audit.redactor.hash(c.value)}
            for c in request.where
        ]

    def _grant_filters(
        self, view: DatasetView, row_filters: tuple[dict[str, Any], ...]
    ) -> tuple[Filter, ...]:
        filters = []
        for i, raw in enumerate(row_filters):
            condition = Condition.model_validate(raw)
            column = view.columns.get(condition.column)
            if column is None:
                # A grant filter on a column the store lacks cannot be enforced: refuse.
                raise Unavailable(f"grant row filter {i} names a missing column")
            filters.append(_typed_filter(column, condition, f"grant.row_filter[{i}]"))
        return tuple(filters)

    def read(
        self, caller: Caller, name: str, body: bytes, accept: str | None, meta: RequestMeta
    ) -> ReadResult:
        parsed: dict[str, QueryRequest] = {}

        def prepare() -> ReadResult:
            media_type = negotiate(accept)
            if len(body) > MAX_QUERY_BYTES:
                raise InvalidRequest(f"the query body exceeds {MAX_QUERY_BYTES} bytes")
            try:
                request = QueryRequest.model_validate_json(body or b"{}")
            except ValidationError as exc:
                raise InvalidRequest(
                    "the query is invalid", errors=_validation_errors(exc)
                ) from None
            parsed["request"] = request
            self._lookup(name)
            dataset = self.config.datasets[name]
            decision = self.decider.decide(
                caller=caller,
                dataset=name,
                at=datetime.now(UTC),
                purpose=request.purpose,
                profile=request.profile,
            )
            if not decision.allowed or decision.obligations is None:
                raise AccessDenied(decision.reasons[0], reasons=list(decision.reasons))
            obligations = decision.obligations
            view = self.view(name, obligations.profile, obligations.columns)
            if request.group_by or request.aggregates:
                raise AccessDenied(
                    "aggregate queries are not offered yet on this gateway", rule="aggregate"
                )
            max_rows = min(
                obligations.row_cap or self.config.gateway.max_rows_per_request,
                self.config.gateway.max_rows_per_request,
            )
            plan = plan_rows(
                request,
                view,
                max_rows=max_rows,
                default_limit=self.config.gateway.default_limit,
                row_filters=self._grant_filters(view, obligations.row_filters),
                cursors=self.cursors,
            )
            transformer = BatchTransformer(
                view, plan.output, keyring=self.keyring, recipient=caller.recipient
            )
            scan = dataclasses.replace(plan.scan, columns=tuple(transformer.source_columns))
            seq = self.audit.append(
                "data.query",
                meta=meta,
                caller=caller,
                dataset=name,
                module=dataset.module,
                decision="allow",
                reasons=decision.reasons,
                purpose=request.purpose,
                profile=obligations.profile,
                grant_id=obligations.grant_id,
                columns=[c.name for c in plan.output],
                where=self._redacted_where(request),
                order_by=[o.model_dump() for o in request.orders()],
                limit=plan.limit,
                offset=plan.offset,
                media_type=media_type,
            )
            cancellation = Cancellation()
            batches = self.connectors[dataset.store].scan(
                table_of(dataset), scan, cancellation=cancellation
            )
            # Pull the first batch now, so a missing object or a dead store becomes a
            # clean problem response instead of a truncated stream.
            first = next(batches, None)
            header = {"dataset": name, "profile": obligations.profile}
            encoder = encoder_for(media_type, transformer.schema, header)
            chunks = self._stream(
                caller,
                meta,
                name,
                seq,
                plan.limit,
                plan.offset,
                plan.fingerprint,
                first,
                batches,
                transformer,
                encoder,
            )
            headers = {"X-Kiteline-Audit-Seq": str(seq), "X-Kiteline-Profile": obligations.profile}
            return ReadResult(media_type, chunks, headers)

        return self._audited(
            prepare,
            caller=caller,
            meta=meta,
            dataset=name,
            action="data.query",
            details=lambda: {"where": self._redacted_where(parsed.get("request"))},
        )

    def _stream(
        self,
        caller: Caller,
        meta: RequestMeta,
        name: str,
        query_seq: int,
        limit: int,
        offset: int,
        fingerprint: str,
        first: pa.RecordBatch | None,
        rest: Iterator[pa.RecordBatch],
        transformer: BatchTransformer,
        encoder: Any,
    ) -> Iterator[bytes]:
        digest = hashlib.sha256()
        rows = 0
        more = False

        def transformed() -> Iterator[pa.RecordBatch]:
            nonlocal rows, more
            pending = [first] if first is not None else []
            for batch in _chain(pending, rest):
                if rows >= limit:
                    more = more or batch.num_rows > 0
                    continue
                take = min(batch.num_rows, limit - rows)
                if take < batch.num_rows:
                    more = True
                out = transformer(batch.slice(0, take))
                rows += out.num_rows
                yield out

        try:
            for chunk in iter_encoded(encoder, transformed()):
                digest.update(chunk)
                yield chunk
            next_cursor = self.cursors.encode(offset + rows, fingerprint) if more else None
            self.audit.append(
                "data.read",
                meta=meta,
                caller=caller,
                dataset=name,
                decision="allow",
                query_seq=query_seq,
                rows=rows,
                digest="sha256:" + digest.hexdigest(),
                complete=True,
            )
        except Exception:
            log.exception("read of %s for request %s stopped", name, meta.request_id)
            try:
                self.audit.append(
                    "data.read",
                    meta=meta,
                    caller=caller,
                    dataset=name,
                    decision="error",
                    query_seq=query_seq,
                    rows=rows,
                    digest="sha256:" + digest.hexdigest(),
                    complete=False,
                )
            except AuditError:
                log.error("could not record the incomplete read of request %s", meta.request_id)
            # Re-raising aborts the response before its closing chunk: the client can tell.
            raise
        yield encoder.finish(next_cursor)


def _chain(first: list[pa.RecordBatch], rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield from first
    yield from rest


__all__ = ["Gateway", "ReadResult", "GatewayError"]
