"""The one chokepoint: authorize -> plan -> scan -> transform -> audit.

Routes parse HTTP and call this service; nothing else decides who may see what. Every
outcome after authentication (allowed, denied, rejected, failed) is appended to the
audit log, and no data leaves unless the allow was recorded first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine

from audit import AuditError, Redactor
from connectors import Cancellation, Connector, Filter, decline_inline
from gateway.access import budgets, key_versions, principals
from gateway.access.decisions import Decider
from gateway.access.grant_requests import GrantWorkflow
from gateway.access.grant_usage import GrantUsage
from gateway.access.keyring import Keyring
from gateway.access.offboarding import Lifecycle
from gateway.access.policy_runtime import PolicyRuntime
from gateway.access.principals import Caller
from gateway.auditing import leak_tracing
from gateway.auditing.log import AuditLog, Prepared, RequestMeta
from gateway.config import Config, LocalStore
from gateway.errors import (
    AccessDenied,
    GatewayError,
    InvalidRequest,
    NotFound,
    Unauthenticated,
    Unavailable,
    as_gateway_error,
    log_failure,
)
from gateway.read.aggregate_read import AggregateReader
from gateway.read.anonymity import ClassIndexCache, qi_spec
from gateway.read.digest import AnswerDigest
from gateway.read.encoders import encoder_for, iter_encoded, negotiate
from gateway.read.inflight import InflightReads
from gateway.read.query import Condition, CursorCodec, QueryRequest, _typed_filter, plan_rows
from gateway.read.result import ReadResult
from gateway.read.stores import build_connectors, table_of
from gateway.read.views import DatasetView, build_view
from gateway.state.database import create_state_engine, migrate
from gateway.transforms.kanonymity import ClassIndex, take_kept
from gateway.transforms.profile import BatchTransformer
from gateway.transforms.pseudonym_cache import PseudonymCache
from gateway.transforms.scrubbing import ScrubCache
from policies import Decision, PolicyError, Profile

log = logging.getLogger(__name__)

SCHEMA_TTL_S = 30.0
# Views differ by dataset, profile and granted columns: few in practice; the bound only
# keeps a pathological grant set from growing the cache without end.
MAX_CACHED_VIEWS = 1024
T = TypeVar("T")
MAX_QUERY_BYTES = 256 * 1024
MAX_TRACE_BYTES = 64 * 1024 * 1024
# Rows per streamed slice: a cancelled read (offboarding, suspension) stops at the next one.
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
AUDIT_READERS = frozenset({"officer"})


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


def _validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
        for e in exc.errors()
    ]


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    principal: str | None = Field(None, max_length=64, description="Default: yourself.")
    dataset: str = Field(max_length=64)
    action: Literal["read"] = "read"
    purpose: str | None = Field(None, max_length=256)
    profile: Profile | None = None


class Gateway:
    """The governed-read service, built from the configuration."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        connectors: dict[str, Connector],
        keyring: Keyring,
        audit: AuditLog,
        policy: PolicyRuntime,
    ) -> None:
        self.config = config
        self.engine = engine
        self.connectors = connectors
        self.keyring = keyring
        self.audit = audit
        self.policy = policy
        self.decider = Decider(engine, config, policy.evaluator)
        self._policy_counter: int | None = None
        self.cursors = CursorCodec(keyring.cursor_key)
        self._schemas: dict[str, tuple[float, pa.Schema]] = {}
        self._schema_lock = threading.Lock()
        self._views: dict[tuple[Any, ...], tuple[pa.Schema, DatasetView]] = {}
        self.class_indexes = ClassIndexCache(config, connectors)
        self.limits = budgets.LimitsCache(engine, config)
        self.aggregates = AggregateReader(config, engine, connectors, audit, self.limits)
        self.inflight = InflightReads()
        self.usage = GrantUsage(engine)
        self.scrub_cache = ScrubCache()
        self.grants = GrantWorkflow(engine, config, audit)
        self.grants.schema_of = self.schema
        self.lifecycle = Lifecycle(self.grants, self.inflight)
        self.pseudonyms = PseudonymCache(config.gateway.pseudonym_cache_entries)

    @classmethod
    def from_config(cls, config: Config) -> Gateway:
        policy = PolicyRuntime(config)
        engine = create_state_engine(config.state_url, timeout_s=config.gateway.state_timeout_s)
        migrate(engine)
        keyring = Keyring.from_config(config)
        audit = AuditLog(
            engine,
            Redactor(keyring.audit_redaction_key),
            policy_version=policy.version,
            timeout_s=config.gateway.audit_timeout_s,
        )
        return cls(config, engine, build_connectors(config), keyring, audit, policy)

    # -- policy ------------------------------------------------------------------------

    def reload_policy(self, meta: RequestMeta | None = None) -> str:
        """Reload the policy directory; a broken policy is refused and the old one stays."""
        old = self.policy.version
        try:
            version = self.policy.reload()
        except PolicyError as exc:
            self.audit.append(
                "policy.reload_refused",
                meta=meta,
                decision="deny",
                reasons=[str(exc)],
                old_version=old,
            )
            raise
        self.decider.use_policy(self.policy.evaluator)
        self.audit.policy_version = version
        self.audit.append(
            "policy.reloaded", meta=meta, decision="allow", old_version=old, new_version=version
        )
        return version

    def _sync_policy(self, caller: Caller) -> None:
        """Reload when another process (``kiteline policy reload``) bumped the policy
        version in the state database; the request is decided under the new policy."""
        counter = caller.version("policy")
        if counter is None:
            return
        if self._policy_counter is None:
            self._policy_counter = counter
        elif counter != self._policy_counter:
            self._policy_counter = counter
            try:
                self.reload_policy()
            except PolicyError:
                log.error("keeping policy %s after a refused reload", self.policy.version)

    def close(self) -> None:
        for connector in self.connectors.values():
            connector.close()
        self.audit.close()
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
        outcome = principals.authenticate(self.engine, token, connection=self.audit.read_connection)
        if isinstance(outcome, str):
            self._audit_auth_failure(meta, outcome, principals.key_id_of(token))
            raise Unauthenticated("the token is invalid, revoked, or its principal is not active")
        self._sync_policy(outcome)
        return outcome

    def _audit_auth_failure(self, meta: RequestMeta, reason: str, key_id: str | None) -> None:
        # The token itself never reaches the log; the key id is public by design.
        try:
            self.audit.append(
                "auth.failed", meta=meta, decision="deny", reasons=[reason], key_id=key_id
            )
        except AuditError as exc:
            raise Unavailable("the audit log could not record this request") from exc

    # -- explain -----------------------------------------------------------------------

    def explain(self, caller: Caller, body: bytes, meta: RequestMeta) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            try:
                request = ExplainRequest.model_validate_json(body or b"{}", strict=True)
            except ValidationError as exc:
                raise InvalidRequest(
                    "the explain request is invalid", errors=_validation_errors(exc)
                ) from None
            subject = caller
            if request.principal not in (None, caller.name):
                if caller.kind != "officer":
                    raise AccessDenied(
                        "only security officers may explain another principal's access",
                        rule="explain others",
                    )
                found = principals.caller_by_name(self.engine, request.principal or "")
                if found is None:
                    raise NotFound(f"no principal named {request.principal!r}")
                subject = found
            self._lookup(request.dataset)
            explanation = self.decider.explain(
                caller=subject,
                dataset=request.dataset,
                at=datetime.now(UTC),
                purpose=request.purpose,
                profile=request.profile,
            )
            decision = explanation.decision
            obligations = decision.obligations
            self.audit.append(
                "decision.explain",
                meta=meta,
                caller=caller,
                dataset=request.dataset,
                module=self.config.datasets[request.dataset].module,
                decision="allow",
                subject=subject.name,
                outcome="allow" if decision.allowed else "deny",
            )
            return {
                "principal": subject.name,
                "dataset": request.dataset,
                "action": request.action,
                "allowed": decision.allowed,
                "reasons": list(decision.reasons),
                "policy_version": self.policy.version,
                "engines": {
                    "casbin": {
                        "allowed": explanation.casbin_allowed,
                        "matched": list(explanation.casbin_lines),
                    },
                    "rego": {
                        "allowed": explanation.rego_allowed,
                        "reasons": list(explanation.rego_reasons),
                        "obligations": explanation.rego_obligations,
                    },
                },
                "obligations": None
                if obligations is None
                else {
                    "profile": obligations.profile,
                    "grant_id": obligations.grant_id,
                    "columns": list(obligations.columns) if obligations.columns else None,
                    "row_cap": obligations.row_cap,
                    "purpose": obligations.purpose,
                    "row_filters": len(obligations.row_filters),
                },
            }

        request_dataset = None
        try:
            request_dataset = ExplainRequest.model_validate_json(body or b"{}").dataset
        except ValidationError:
            pass
        return self._audited(
            run, caller=caller, meta=meta, dataset=request_dataset, action="decision.explain"
        )

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
        # A view is a function of the configuration (fixed for this object), the store's
        # schema and the grant's profile and columns: rebuilt only when the schema is.
        schema = self.schema(name)
        key = (name, profile, columns)
        cached = self._views.get(key)
        if cached is not None and cached[0] is schema:
            return cached[1]
        view = build_view(name, self.config.datasets[name], schema, profile, columns)
        with self._schema_lock:
            if len(self._views) >= MAX_CACHED_VIEWS:
                self._views.clear()
            self._views[key] = (schema, view)
        return view

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
        def run() -> list[dict[str, Any]]:
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

        # A store that cannot describe a dataset fails the listing (closed) and is audited.
        return self._audited(run, caller=caller, meta=meta, dataset=None, action="catalog.list")

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
            if isinstance(error, AccessDenied) or isinstance(exc, PolicyError):
                # A policy engine that cannot answer is a denial (fail closed).
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

    def reads_locally(self, name: str) -> bool:
        """Whether a read of ``name`` touches only local files (an unknown name reads
        nothing): such a read may be tried on the event loop (see ReadSlots)."""
        dataset = self.config.datasets.get(name)
        return dataset is None or isinstance(self.config.stores.get(dataset.store), LocalStore)

    def read(
        self, caller: Caller, name: str, body: bytes, accept: str | None, meta: RequestMeta
    ) -> ReadResult:
        parsed: dict[str, QueryRequest] = {}

        def prepare() -> ReadResult:
            media_type = negotiate(accept)
            if len(body) > MAX_QUERY_BYTES:
                raise InvalidRequest(f"the query body exceeds {MAX_QUERY_BYTES} bytes")
            try:
                # Strict: "10" is not a limit, and no other value is coerced either.
                request = QueryRequest.model_validate_json(body or b"{}", strict=True)
            except ValidationError as exc:
                raise InvalidRequest(
                    "the query is invalid", errors=_validation_errors(exc)
                ) from None
            parsed["request"] = request
            self._lookup(name)
            aggregate = bool(request.group_by or request.aggregates)
            if aggregate:
                decline_inline("an aggregate query reads the whole dataset")
            decision = self.decider.decide(
                caller=caller,
                dataset=name,
                at=datetime.now(UTC),
                purpose=request.purpose,
                # An aggregate query asks for the aggregate profile, never more.
                profile=request.profile or ("aggregate" if aggregate else None),
            )
            if not decision.allowed or decision.obligations is None:
                raise AccessDenied(decision.reasons[0], reasons=list(decision.reasons))
            obligations = decision.obligations
            view = self.view(name, obligations.profile, obligations.columns)
            if aggregate:
                return self.aggregates.read(
                    caller, name, request, obligations, view, media_type, meta, decision.reasons
                )
            limits = self.limits.get(obligations.grant_id, caller.version("grants"))
            max_rows = min(
                obligations.row_cap or self.config.gateway.max_rows_per_request,
                self.config.gateway.max_rows_per_request,
                limits.rows_per_request or self.config.gateway.max_rows_per_request,
            )
            plan = plan_rows(
                request,
                view,
                max_rows=max_rows,
                default_limit=self.config.gateway.default_limit,
                row_filters=self._grant_filters(view, obligations.row_filters),
                cursors=self.cursors,
                principal=caller.name,
            )
            if plan.limit > BUFFERED_READ_ROWS:
                decline_inline("a large answer is streamed from worker threads")
            transformer = BatchTransformer(
                view,
                plan.output,
                keyring=self.keyring,
                recipient=caller.recipient,
                key_version=caller.key_version or key_versions.current_version(self.engine),
                pseudonym_cache=self.pseudonyms,
                scrub_cache=self.scrub_cache,
            )
            columns = transformer.source_columns
            spec = qi_spec(view)
            suppress = self.class_indexes.index(name, spec) if spec is not None else None
            if spec is not None:
                columns += [c for c in spec.source_columns if c not in columns]
            # Rows are reserved before any leave, and what is not sent is given back.
            reserved, charges, left = budgets.reserve_rows(
                self.engine, obligations.grant_id, limits, plan.limit
            )
            plan = dataclasses.replace(plan, limit=reserved)
            scan = dataclasses.replace(
                plan.scan,
                columns=tuple(columns),
                dictionary=transformer.dictionary_columns(spec.source_columns if spec else ()),
                # A bulk read maps each distinct identifier of a dictionary-encoded
                # column once, far cheaper than keying block after block (figures in
                # docs/performance.md).
                derived=transformer.derivations(pseudonyms=plan.limit <= BUFFERED_READ_ROWS)
                + ((suppress.derivation(),) if suppress is not None else ()),
                # Suppressed rows do not count: read on from the offset until the page fills.
                limit=None if suppress is not None else reserved + 1,
            )
            try:
                return self._start_read(
                    caller,
                    meta,
                    name,
                    request,
                    decision,
                    obligations,
                    plan,
                    scan,
                    media_type,
                    transformer,
                    suppress,
                    charges,
                    reserved,
                    left,
                )
            except BaseException:
                budgets.settle_rows(self.engine, charges, reserved, 0)
                raise

        return self._audited(
            prepare,
            caller=caller,
            meta=meta,
            dataset=name,
            action="data.query",
            details=lambda: {"where": self._redacted_where(parsed.get("request"))},
        )

    def _start_read(
        self,
        caller: Caller,
        meta: RequestMeta,
        name: str,
        request: QueryRequest,
        decision: Decision,
        obligations: Any,
        plan: Any,
        scan: Any,
        media_type: str,
        transformer: BatchTransformer,
        suppress: ClassIndex | None,
        charges: list[budgets.Charge],
        reserved: int,
        left: dict[str, float | None],
    ) -> ReadResult:
        dataset = self.config.datasets[name]
        query = self.audit.prepare(
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
            rows_reserved=reserved,
            key_version=transformer.key_version,
            k=suppress.spec.k if suppress is not None else None,
        )
        headers = {"X-Kiteline-Profile": obligations.profile}
        headers.update(budgets.headers(left))
        small = plan.limit <= BUFFERED_READ_ROWS
        record = _QueryRecord(self.audit, query, headers, deferred=small)
        self.usage.touch(obligations.grant_id)
        cancellation = Cancellation()
        handle = self.inflight.add(caller.name, caller.org, cancellation)
        try:
            batches = self.connectors[dataset.store].scan(
                table_of(dataset),
                scan,
                batch_size=scan_batch_rows(
                    plan.limit,
                    len(scan.columns),
                    suppress.released_share if suppress is not None else 1.0,
                ),
                cancellation=cancellation,
            )
            # Pull the first batch now, so a missing object or a dead store becomes a
            # clean problem response instead of a truncated stream.
            first = next(batches, None)
        except BaseException:
            self.inflight.discard(handle)
            raise
        header = {"dataset": name, "profile": obligations.profile}
        encoder = encoder_for(media_type, transformer.schema, header)
        chunks = self._stream(
            caller,
            meta,
            name,
            record,
            plan.limit,
            plan.offset,
            plan.fingerprint,
            first,
            batches,
            transformer,
            encoder,
            suppress,
            lambda sent: budgets.settle_rows(self.engine, charges, reserved, sent),
            cancellation,
            handle,
        )
        return ReadResult(media_type, chunks, headers, small=small)

    # -- leak tracing ----------------------------------------------------------------

    def trace(
        self,
        caller: Caller,
        body: bytes,
        filename: str | None,
        content_type: str | None,
        meta: RequestMeta,
    ) -> dict[str, Any]:
        """Name the recipient of a leaked extract (officers only); every trace is audited."""

        def run() -> dict[str, Any]:
            if caller.kind != "officer":
                raise AccessDenied("only security officers may trace leaked extracts")
            if len(body) > MAX_TRACE_BYTES:
                raise InvalidRequest(f"the extract exceeds {MAX_TRACE_BYTES} bytes")
            return self.trace_extract(body, filename, content_type, meta=meta, caller=caller)

        return self._audited(run, caller=caller, meta=meta, dataset=None, action="trace.run")

    def trace_extract(
        self,
        body: bytes,
        filename: str | None,
        content_type: str | None,
        *,
        meta: RequestMeta | None = None,
        caller: Caller | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        try:
            table = leak_tracing.read_extract(
                body, leak_tracing.detect_format(filename, content_type)
            )
        except leak_tracing.TraceError as exc:
            raise InvalidRequest(str(exc)) from None
        domains, values = leak_tracing.source_reader(self.config, self.connectors)
        report = leak_tracing.trace(
            table,
            keyring=self.keyring,
            recipients=leak_tracing.known_recipients(self.engine),
            versions=key_versions.all_versions(self.engine),
            domains=domains,
            source_values=values,
        ).as_dict()
        report["extract_sha256"] = hashlib.sha256(body).hexdigest()
        self.audit.append(
            "trace.run",
            meta=meta,
            caller=caller,
            actor=actor,
            decision="allow",
            verdict=report["verdict"],
            extract_sha256=report["extract_sha256"],
            rows=report["rows"],
            attributed=report["attributed"],
        )
        return report

    def _stream(
        self,
        caller: Caller,
        meta: RequestMeta,
        name: str,
        query: _QueryRecord,
        limit: int,
        offset: int,
        fingerprint: str,
        first: pa.RecordBatch | None,
        rest: Iterator[pa.RecordBatch],
        transformer: BatchTransformer,
        encoder: Any,
        suppress: ClassIndex | None,
        settle: Callable[[int], None],
        cancellation: Cancellation,
        handle: int,
    ) -> Iterator[bytes]:
        digest = AnswerDigest()
        rows = 0
        consumed = 0  # source rows read past the offset; differs from rows when suppressing
        more = False

        def transformed() -> Iterator[pa.RecordBatch]:
            nonlocal rows, consumed, more
            pending = [first] if first is not None else []
            for batch in _chain(pending, rest):
                if rows >= limit:
                    if batch.num_rows:
                        # A row past the window proves a next page; stop reading there.
                        more = True
                        break
                    continue
                if suppress is not None:
                    kept, used, cut = take_kept(batch, suppress.kept(batch), limit - rows)
                    more = more or cut
                else:
                    used = min(batch.num_rows, limit - rows)
                    more = more or used < batch.num_rows
                    kept = batch.slice(0, used)
                consumed += used
                # Transform whole scanned batches (per-batch work such as dictionary
                # encoding is amortized), then hand them out in slices: an offboarded
                # principal's read stops at the next slice.
                out = transformer(kept)
                for start in range(0, out.num_rows, STREAM_SLICE_ROWS):
                    cancellation.raise_if_cancelled()
                    piece = out.slice(start, STREAM_SLICE_ROWS)
                    rows += piece.num_rows
                    yield piece
                if more and rows >= limit:
                    # The page is full and this batch proved a next one: reading the
                    # next batch would only prove it again.
                    break

        settled = False

        def settle_once() -> None:
            # A failure after the budget was settled (the audit append) must not give the
            # unfilled rows back a second time.
            nonlocal settled
            if not settled:
                settle(rows)
                settled = True

        def settle_quietly() -> None:
            try:
                settle_once()
            except Exception:
                log.exception("could not settle the row budget of request %s", meta.request_id)

        def record_read(*, complete: bool, reasons: tuple[str, ...] = ()) -> None:
            query.record_read(
                self.audit.prepare(
                    "data.read",
                    meta=meta,
                    caller=caller,
                    dataset=name,
                    decision="allow" if complete else "error",
                    query_seq=query.seq,
                    rows=rows,
                    digest="sha256:" + digest.hexdigest(),
                    complete=complete,
                    reasons=reasons,
                )
            )

        def incomplete(reason: str) -> None:
            try:
                record_read(complete=False, reasons=(reason,))
            except AuditError:
                log.error("could not record the incomplete read of request %s", meta.request_id)

        try:
            for chunk in iter_encoded(encoder, transformed()):
                digest.update(chunk)
                yield chunk
            next_cursor = self.cursors.encode(offset + consumed, fingerprint) if more else None
            settle_once()
            record_read(complete=True)
        except GeneratorExit:
            # The response was abandoned (client gone, server shutting down) mid-stream.
            settle_quietly()
            incomplete("the response was abandoned before it was complete")
            raise
        except Exception as exc:
            log_failure(log, f"read of {name} for request {meta.request_id} stopped", exc)
            settle_quietly()
            incomplete(as_gateway_error(exc).detail)
            # Re-raising aborts the response before its closing chunk: the client can tell.
            raise
        finally:
            digest.close()
            self.inflight.discard(handle)
            # Release the store cursor (a pooled connection for PostgreSQL) right away.
            close = getattr(rest, "close", None)
            if close is not None:
                close()
        yield encoder.finish(next_cursor)


class _QueryRecord:
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


def _chain(first: list[pa.RecordBatch], rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield from first
    yield from rest


__all__ = ["Gateway", "ReadResult", "GatewayError"]
