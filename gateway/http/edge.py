"""The edge: what every request meets before any handler, and the record of every answer.

In order: per-address rate limit, the declared body size, authentication (before any
byte of the body is parsed, so an outsider learns nothing from validation errors and
gets 401 before 400), per-principal rate limit, the body read while counted against
the route's limit, and strict JSON where JSON is declared. Afterwards, any answer that
no handler recorded in the audit log (a refused body, an unknown route, a crash) is
recorded here, with the caller when the token authenticated. A success that cannot be
recorded is turned into a 503: nothing leaves unaudited.

Every wait on the state database until the answer starts honours one deadline, set
here when the request arrives (``gateway.state.deadline``): a request that cannot
reach the database answers within ``gateway.state_timeout_s`` and a small margin.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.access.principals import Caller
from gateway.auditing.log import RequestMeta
from gateway.config import RateLimits
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    PayloadTooLarge,
    TooManyRequests,
    Unavailable,
    UnsupportedMediaType,
    as_gateway_error,
    log_failure,
)
from gateway.http.problems import CLIENT_CLOSED_REQUEST, problem_for
from gateway.http.rate_limits import RateLimiter
from gateway.read.chokepoint import MAX_QUERY_BYTES
from gateway.service import MAX_TRACE_BYTES, Gateway
from gateway.state.deadline import request_deadline

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 64 * 1024
MAX_HOOK_BYTES = 16 * 1024
# Routes anyone may call: operations, the documentation (and the files its pages load),
# the checkpoint key, and the HR hook (which carries an HMAC signature instead of a token).
DOCS_ASSETS = "/docs/assets"
PUBLIC = frozenset(
    {
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/docs",
        "/redoc",
        "/v1/audit/public-key",
        "/v1/hooks/hr",
    }
)
# Polled by load balancers and monitors: never rate limited, and recorded only when
# refused.
OPERATIONS = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_BODY = {
    "/v1/datasets/{name}/query": MAX_QUERY_BYTES,
    "/v1/trace": MAX_TRACE_BYTES,
    "/v1/hooks/hr": MAX_HOOK_BYTES,
}
# Bodies that are not JSON: a leaked extract to trace (CSV, Parquet, JSON lines).
NOT_JSON = frozenset({"/v1/trace"})
_JSON_TYPES = ("application/json",)


@dataclass(frozen=True, slots=True)
class RouteRule:
    path: str  # the route's template, or "unmatched"
    public: bool
    max_body: int
    json_body: bool
    # Set when the path is known but not for this method: the methods it allows.
    allow: tuple[str, ...] = ()


UNMATCHED = RouteRule("unmatched", public=True, max_body=DEFAULT_MAX_BODY, json_body=False)


# The web console authenticates by its own session cookie and takes HTML forms: the
# edge leaves both to it, and bounds its bodies (a leaked extract may be uploaded).
CONSOLE = "/console"
CONSOLE_MAX_BODY = {"/console/trace": MAX_TRACE_BYTES}


def rule_for(path: str) -> RouteRule:
    if path == CONSOLE or path.startswith(CONSOLE + "/"):
        return RouteRule(
            path,
            public=True,
            max_body=CONSOLE_MAX_BODY.get(path, DEFAULT_MAX_BODY),
            json_body=False,
        )
    return RouteRule(
        path,
        public=path in PUBLIC or path == DOCS_ASSETS or path.startswith(DOCS_ASSETS + "/"),
        max_body=MAX_BODY.get(path, DEFAULT_MAX_BODY),
        json_body=path not in NOT_JSON,
    )


def flat_routes(routes: list[BaseRoute]) -> list[BaseRoute]:
    """The routes behind included routers, in matching order (FastAPI may keep an
    included router as one entry; kiteline includes its routers without a prefix)."""
    flat: list[BaseRoute] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        flat.extend(flat_routes(list(included.routes)) if included is not None else [route])
    return flat


class MethodNotAllowed(GatewayError):
    slug = "method-not-allowed"

    def __init__(self, allow: tuple[str, ...]) -> None:
        super().__init__(f"this resource allows {', '.join(allow)}")
        self.allow = allow


class _Refused(Exception):
    def __init__(self, error: GatewayError) -> None:
        self.error = error


def strict_json(body: bytes) -> None:
    """Refuse what a lenient parser would quietly accept: invalid UTF-8, duplicate keys
    (which one wins differs between parsers) and NaN or Infinity (not JSON)."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            duplicate = next(k for k in keys if keys.count(k) > 1)
            raise InvalidRequest(
                "the JSON body repeats a key",
                errors=[{"field": duplicate[:64], "message": "duplicate key"}],
            )
        return dict(pairs)

    def no_constant(name: str) -> Any:
        raise InvalidRequest(f"{name} is not a JSON value")

    try:
        json.loads(
            body.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constant
        )
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            "the body is not valid JSON",
            errors=[{"field": "(body)", "message": f"{exc.msg} at position {exc.pos}"}],
        ) from None
    except RecursionError:
        raise InvalidRequest("the JSON body is nested too deeply") from None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class Edge:
    """Pure ASGI middleware, inside ``RequestContext`` (which names the request)."""

    def __init__(self, app: ASGIApp, *, routes: Callable[[], list[BaseRoute]]) -> None:
        self.app = app
        self._routes = routes
        self._rules: list[tuple[BaseRoute, RouteRule]] | None = None
        # Requests in flight -> whether an audit event names them yet.
        self._recorded: dict[str, bool] = {}
        self._limits: tuple[RateLimiter | None, RateLimiter | None] | None = None
        self._observing: Gateway | None = None

    # -- setup ---------------------------------------------------------------------

    def _route_rules(self) -> list[tuple[BaseRoute, RouteRule]]:
        if self._rules is None:
            self._rules = [
                (r, rule_for(str(getattr(r, "path", "")))) for r in flat_routes(self._routes())
            ]
        return self._rules

    def _observe(self, gateway: Gateway) -> None:
        if self._observing is not gateway:
            if self._observing is not None:
                self._observing.audit.unobserve_requests(self._mark)
            gateway.audit.observe_requests(self._mark)
            self._observing = gateway
            limits: RateLimits = gateway.config.gateway.rate_limits
            self._limits = (
                RateLimiter(limits.per_ip) if limits.per_ip else None,
                RateLimiter(limits.per_principal) if limits.per_principal else None,
            )

    def _mark(self, request_id: str) -> None:
        if request_id in self._recorded:
            self._recorded[request_id] = True

    def _match(self, scope: Scope) -> RouteRule:
        partial: RouteRule | None = None
        allowed: set[str] = set()
        for route, rule in self._route_rules():
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return rule
            if match is Match.PARTIAL:
                partial = partial or rule
                allowed.update(getattr(route, "methods", None) or ())
        if partial is None:
            return UNMATCHED
        # A known path with another method: 405, naming every method any of its routes
        # allows (the router alone would name only the first route's).
        return dataclasses.replace(partial, allow=tuple(sorted(allowed)))

    # -- the request ---------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gateway: Gateway = scope["app"].state.gateway
        self._observe(gateway)
        state = scope.setdefault("state", {})
        request_id: str = state.get("request_id", "-")
        client = scope.get("client")
        meta = RequestMeta(
            request_id=request_id,
            client=client[0] if client else None,
            user_agent=_header(scope, b"user-agent"),
        )
        rule = self._match(scope)
        # Named for whoever looks at an answer the edge gave before any route ran.
        scope.setdefault("state", {})["edge_route"] = rule.path
        self._recorded[request_id] = False
        started = False
        reasons: list[str] = []

        async def send_recorded(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if not self._recorded.get(request_id, True):
                    status = int(message["status"])
                    caller = state.get("caller")
                    await self._record(gateway, meta, caller, scope, rule, status, reasons)
                started = True
                # Answered in time: what a stream records at its end has its own bounds.
                deadline.lift()
            await send(message)

        # The failure's own record is held to the deadline too.
        with request_deadline(gateway.config.gateway.state_timeout_s) as deadline:
            try:
                receive_checked = await self._admit(gateway, scope, receive, rule, meta)
                await self.app(scope, receive_checked, send_recorded)
            except _Refused as refused:
                if started:
                    raise
                reasons.append(refused.error.detail)
                await self._answer(send_recorded, request_id, refused.error)
            except Exception as exc:
                if started:
                    raise
                error = as_gateway_error(exc)
                log_failure(log, f"request {request_id} failed", exc)
                reasons.append(error.detail)
                await self._answer(send_recorded, request_id, error)
            finally:
                self._recorded.pop(request_id, None)

    async def _admit(
        self, gateway: Gateway, scope: Scope, receive: Receive, rule: RouteRule, meta: RequestMeta
    ) -> Receive:
        """``receive`` for the app once the request is admitted; the authenticated
        caller is left in the scope's state (FastAPI's ``request.state.caller``)."""
        per_ip, per_principal = self._limits or (None, None)
        if per_ip is not None and rule.path not in OPERATIONS and meta.client:
            self._limit(per_ip, f"ip:{meta.client}", "this address")
        state = scope["state"]
        state["caller"] = None
        if not rule.public:
            try:
                caller = await run_in_threadpool(
                    gateway.authenticate, _header(scope, b"authorization"), meta
                )
            except Exception as exc:
                raise _Refused(as_gateway_error(exc)) from exc
            state["caller"] = caller
            if per_principal is not None:
                self._limit(per_principal, f"principal:{caller.name}", "this principal")
        if rule.allow:
            raise _Refused(MethodNotAllowed(rule.allow))
        # The body is never read for a caller refused above: an oversized one either.
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > rule.max_body):
            raise _Refused(PayloadTooLarge(f"the body exceeds {rule.max_body} bytes"))
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            return receive
        body = await self._read_body(receive, rule.max_body)
        if body and rule.json_body:
            # No Content-Type is taken as JSON (what a bare HTTP client sends); any other
            # declared type is refused rather than guessed at.
            declared_type = _header(scope, b"content-type")
            media = (declared_type or "application/json").split(";")[0].strip().lower()
            if media not in _JSON_TYPES and not media.endswith("+json"):
                raise _Refused(UnsupportedMediaType("send the body as application/json"))
            try:
                strict_json(body)
            except InvalidRequest as exc:
                raise _Refused(exc) from None
        return _replay(body, receive)

    def _limit(self, limiter: RateLimiter, key: str, whose: str) -> None:
        wait = limiter.retry_after(key)
        if wait is not None:
            raise _Refused(
                TooManyRequests(f"too many requests from {whose}; retry later", retry_after_s=wait)
            )

    async def _read_body(self, receive: Receive, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refused(PayloadTooLarge(f"the body exceeds {limit} bytes"))
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _answer(self, send: Send, request_id: str, error: GatewayError) -> None:
        allow = getattr(error, "allow", None)
        response = problem_for(request_id, error, {"Allow": ", ".join(allow)} if allow else None)
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": response.raw_headers,
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    async def _record(
        self,
        gateway: Gateway,
        meta: RequestMeta,
        caller: Caller | None,
        scope: Scope,
        rule: RouteRule,
        status: int,
        reasons: list[str],
    ) -> None:
        if status < 400 and (not rule.path.startswith("/v1/") or rule.path in OPERATIONS):
            return
        if status == CLIENT_CLOSED_REQUEST:  # nobody was answered, nothing was done
            return
        # A log known to be failing cannot record its own 503: it is not tried again.
        if status >= 500 and gateway.audit.failing:
            return
        # The same kinds and decisions as the service's own records of its refusals.
        if status >= 500:
            kind, decision = "request.failed", "error"
        elif status >= 400:
            kind, decision = "request.rejected", "deny" if status in (401, 403) else "reject"
        else:
            kind, decision = "request.served", "allow"
        try:
            await run_in_threadpool(
                gateway.audit.append,
                kind,
                meta=meta,
                caller=caller,
                decision=decision,
                reasons=reasons,
                status=status,
                method=scope["method"],
                route=rule.path,
            )
        except Exception as exc:
            self._recorded[meta.request_id] = True  # tried once; the answer says so
            log_failure(log, f"request {meta.request_id}: its answer could not be audited", exc)
            if status < 400:
                # Nothing leaves unrecorded: the answer becomes a 503 instead.
                raise _Refused(
                    Unavailable("the audit log could not record this request; nothing was returned")
                ) from exc


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # the disconnect, when it comes

    return replayed
