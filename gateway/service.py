"""The one chokepoint: authorize -> plan -> scan -> transform -> audit.

Routes parse HTTP and call this service; nothing else decides who may see what. Every
outcome after authentication (allowed, denied, rejected, failed) is appended to the
audit log, and no data leaves unless the allow was recorded first.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
from sqlalchemy import Engine

from audit import AuditError, Redactor
from connectors import Connector
from gateway.access import budgets, key_versions, policy_bundles, principals
from gateway.access.decisions import Decider
from gateway.access.grant_requests import GrantWorkflow
from gateway.access.grant_usage import GrantUsage
from gateway.access.keyring import Keyring
from gateway.access.listing import AccessListing
from gateway.access.offboarding import Lifecycle
from gateway.access.policy_runtime import PolicyRuntime
from gateway.access.principals import Caller
from gateway.auditing import leak_tracing
from gateway.auditing.log import AuditLog, RequestMeta
from gateway.auditing.outcomes import Outcomes
from gateway.config import Config, LocalStore
from gateway.errors import (
    AccessDenied,
    GatewayError,
    InvalidRequest,
    Unauthenticated,
    Unavailable,
)
from gateway.read.aggregate_read import AggregateReader
from gateway.read.anonymity import ClassIndexCache
from gateway.read.catalog import Catalog
from gateway.read.chokepoint import Chokepoint, parse_query
from gateway.read.encoders import ARROW
from gateway.read.explain import Explainer
from gateway.read.inflight import InflightReads
from gateway.read.query import CursorCodec
from gateway.read.result import ReadResult
from gateway.read.rows import RowReader
from gateway.read.stores import build_connectors
from gateway.read.tickets import TicketCodec
from gateway.read.view_cache import ViewCache
from gateway.read.views import DatasetView
from gateway.state.database import create_state_engine, migrate
from gateway.transforms.pseudonym_cache import PseudonymCache
from gateway.transforms.scrubbing import ScrubCache
from policies import PolicyError, Profile

log = logging.getLogger(__name__)

MAX_TRACE_BYTES = 64 * 1024 * 1024
AUDIT_READERS = frozenset({"officer"})


@dataclass(eq=False)
class Gateway:
    """The governed-read service, built from the configuration; what it is built on is
    given, and the rest is made from it."""

    config: Config
    engine: Engine
    connectors: dict[str, Connector]
    keyring: Keyring
    audit: AuditLog
    policy: PolicyRuntime

    def __post_init__(self) -> None:
        self.decider = Decider(
            self.engine, self.config, self.policy.evaluator, redact=self.audit.redactor.hash
        )
        policy_bundles.keep(self.engine, self.policy.directory)
        self._policy_counter: int | None = None
        self.cursors = CursorCodec(self.keyring.cursor_key)
        self.tickets = TicketCodec(
            self.keyring.flight_ticket_key, ttl_s=self.config.flight.ticket_ttl_s
        )
        self.views = ViewCache(self.config, self.connectors)
        self.outcomes = Outcomes(self.audit, self.config)
        self.class_indexes = ClassIndexCache(self.config, self.connectors)
        self.limits = budgets.LimitsCache(self.engine, self.config)
        self.inflight = InflightReads()
        self.usage = GrantUsage(self.engine)
        self.scrub_cache = ScrubCache()
        self.grants = GrantWorkflow(self.engine, self.config, self.audit)
        self.access = AccessListing(self.engine, self.config, self.decider, self.grants)
        self.grants.schema_of = self.schema
        self.lifecycle = Lifecycle(self.grants, self.inflight)
        self.pseudonyms = PseudonymCache(self.config.gateway.pseudonym_cache_entries)
        self.catalog = Catalog(
            config=self.config, decider=self.decider, views=self.views, outcomes=self.outcomes
        )
        self.explainer = Explainer(
            config=self.config,
            engine=self.engine,
            decider=self.decider,
            audit=self.audit,
            limits=self.limits,
            cursors=self.cursors,
            views=self.views,
            policy_version=lambda: self.policy.version,
        )
        self.chokepoint = Chokepoint(
            config=self.config,
            decider=self.decider,
            views=self.views,
            keyring=self.keyring,
            outcomes=self.outcomes,
            rows=RowReader(
                self.engine,
                self.connectors,
                self.audit,
                self.cursors,
                self.usage,
                self.inflight,
                self.decider,
            ),
            aggregates=AggregateReader(
                self.engine, self.connectors, self.audit, delta=self.config.budgets.delta
            ),
            class_indexes=self.class_indexes,
            limits=self.limits,
            pseudonyms=self.pseudonyms,
            scrub_cache=self.scrub_cache,
            cursors=self.cursors,
        )

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
        policy_bundles.keep(self.engine, self.policy.directory)
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
        """What a read would get (the full query), or a past decision replayed."""
        try:
            dataset = orjson.loads(body or b"{}").get("dataset")
        except (orjson.JSONDecodeError, AttributeError):
            dataset = None
        return self.outcomes.audited(
            lambda: self.explainer.explain(caller, body, meta),
            caller=caller,
            meta=meta,
            dataset=dataset if isinstance(dataset, str) else None,
            action="decision.explain",
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
        return self.views.schema(name)

    def view(
        self, name: str, profile: Profile, columns: tuple[str, ...] | None = None
    ) -> DatasetView:
        return self.views.view(name, profile, columns)

    def list_datasets(
        self, caller: Caller, meta: RequestMeta, purpose: str | None = None
    ) -> list[dict[str, Any]]:
        return self.catalog.list_datasets(caller, meta, purpose)

    def describe(
        self, caller: Caller, name: str, meta: RequestMeta, purpose: str | None = None
    ) -> dict[str, Any]:
        return self.catalog.describe(caller, name, meta, purpose)

    # -- the governed read ---------------------------------------------------------

    def reads_locally(self, name: str) -> bool:
        """Whether a read of ``name`` touches only local files (an unknown name reads
        nothing): such a read may be tried on the event loop (see ReadSlots)."""
        dataset = self.config.datasets.get(name)
        return dataset is None or isinstance(self.config.stores.get(dataset.store), LocalStore)

    def read(
        self, caller: Caller, name: str, body: bytes, accept: str | None, meta: RequestMeta
    ) -> ReadResult:
        return self.chokepoint.read(caller, name, body, accept, meta)

    # -- bulk reads over Arrow Flight ----------------------------------------------

    def flight_ticket(self, caller: Caller, command: bytes, meta: RequestMeta) -> FlightTicket:
        """A signed ticket for the read ``command`` describes (JSON: ``dataset`` and
        ``query``, the body of ``POST /v1/datasets/{name}/query``), issued only when the
        chokepoint allows it; issue and refusal are audited (``flight.ticket``)."""
        invalid: InvalidRequest | None = None
        dataset: str | None = None
        body = b""
        try:
            dataset, body = _flight_command(command)
        except InvalidRequest as refused:
            invalid = refused

        def run() -> FlightTicket:
            if invalid is not None or dataset is None:
                raise invalid or InvalidRequest("the Flight command names no dataset")
            request = parse_query(body)
            reader = self.chokepoint.admit(caller, dataset, request, ARROW)
            ticket, expires = self.tickets.issue(principal=caller.name, dataset=dataset, body=body)
            seq = self.audit.append(
                "flight.ticket",
                meta=meta,
                caller=caller,
                dataset=dataset,
                module=reader.module,
                decision="allow",
                reasons=reader.reasons,
                purpose=request.purpose,
                profile=reader.obligations.profile,
                grant_id=reader.obligations.grant_id,
                decision_basis=reader.basis,
                where=self.chokepoint.redacted_where(request),
                expires_at=expires,
                # Names the ticket without revealing it (it is a bearer credential).
                ticket_sha256=hashlib.sha256(ticket).hexdigest(),
            )
            return FlightTicket(ticket, dataset, reader.obligations.profile, expires, seq)

        return self.outcomes.audited(
            run,
            caller=caller,
            meta=meta,
            dataset=dataset,
            action="flight.ticket",
        )

    def flight_read(self, caller: Caller, ticket: bytes, meta: RequestMeta) -> ReadResult:
        """The governed read a ticket promises, run through the chokepoint as over HTTP
        (an Arrow IPC stream); a ticket that is altered, expired or someone else's is
        refused and audited."""
        redeemed = self.outcomes.audited(
            lambda: self.tickets.redeem(ticket, principal=caller.name),
            caller=caller,
            meta=meta,
            dataset=None,
            action="flight.get",
        )
        return self.read(caller, redeemed.dataset, redeemed.body, ARROW, meta)

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

        return self.outcomes.audited(
            run, caller=caller, meta=meta, dataset=None, action="trace.run"
        )

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
        # An attributed extract is a `trace.hit`, which the shipped `trace-hit` rule watches.
        self.audit.append(
            "trace.hit" if report["attributed"] else "trace.run",
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


@dataclass(frozen=True, slots=True)
class FlightTicket:
    ticket: bytes
    dataset: str
    profile: str
    expires: float
    audit_seq: int | None


def _flight_command(command: bytes) -> tuple[str, bytes]:
    """The dataset and the query body of a Flight descriptor's command."""
    bad = 'the Flight command must be JSON: {"dataset": NAME, "query": {...}}'
    try:
        parsed = orjson.loads(command or b"{}")
    except orjson.JSONDecodeError:
        raise InvalidRequest(bad) from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("dataset"), str):
        raise InvalidRequest(bad)
    query = parsed.get("query", {})
    if not isinstance(query, dict) or set(parsed) - {"dataset", "query"}:
        raise InvalidRequest(bad)
    return parsed["dataset"], orjson.dumps(query)


__all__ = ["FlightTicket", "Gateway", "ReadResult", "GatewayError"]
