"""What every console page shares: the signed-in caller, rendering, security headers,
CSRF checks and the HTML form of the gateway's errors.

Pages call the same services as the API, with the caller authenticated from the
session's API token on every request, so revocation, suspension and offboarding end a
console session on its next page, and every refusal is decided (and audited) where
the API decides it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from gateway.access.permissions import ensure_role
from gateway.access.principals import Caller
from gateway.auditing.log import RequestMeta
from gateway.auditing.trail import AuditTrail
from gateway.errors import AccessDenied, GatewayError, InvalidRequest, NotFound, Unauthenticated
from gateway.http.console.sessions import COOKIE, Session, SessionStore, same_secret
from gateway.http.problems import problem_of
from gateway.http.routes.deps import request_meta_of, service_of
from gateway.service import Gateway

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
F = TypeVar("F", bound=Callable[..., Response])


class Console:
    """The console's per-app state: its sessions and its templates."""

    def __init__(self, sessions: SessionStore | None = None) -> None:
        self.sessions = sessions or SessionStore()
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )


class LoginRequired(Exception):
    """No live session: the browser is sent to the login page."""


@dataclass
class Visit:
    """One request of a signed-in user."""

    request: Request
    console: Console
    gateway: Gateway
    session: Session
    caller: Caller
    meta: RequestMeta

    @property
    def trail(self) -> AuditTrail:
        trail: AuditTrail = self.request.app.state.audit_trail
        return trail

    def check_csrf(self, given: str | None) -> None:
        if not same_secret(given, self.session.csrf):
            raise AccessDenied("the form's CSRF token is missing or wrong", rule="csrf")

    def act(
        self, csrf: str, text: str, missing: str, *, verb: str = "", verbs: tuple[str, ...] = ()
    ) -> str:
        """The shape of every form that acts: its CSRF token checked first, then the verb
        its path names (one of ``verbs``, when given), then the text the act records (a
        reason, a note) required, else ``missing`` is the refusal. That text, stripped;
        the service the page then calls decides and audits."""
        self.check_csrf(csrf)
        if verbs and verb not in verbs:
            raise NotFound(f"no action {verb!r}")
        if not text.strip():
            raise InvalidRequest(missing)
        return text.strip()

    def review(self, action: str, **fields: Any) -> None:
        """An officer's look at the audit log from the console: refused unless allowed,
        and recorded either way."""
        self.gateway.authorize_audit(
            self.caller, self.meta, action, record=True, **fields, via="console"
        )

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return render(
            self.request,
            self.console,
            template,
            status_code=status_code,
            caller=self.caller,
            csrf=self.session.csrf,
            pending=pending_count(self.gateway, self.caller),
            **context,
        )


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def render(
    request: Request, console: Console, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    html = console.templates.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def visit(request: Request) -> Visit:
    """The signed-in caller, re-authenticated from the session's token, or LoginRequired."""
    console = console_of(request)
    cookie = request.cookies.get(COOKIE)
    session = console.sessions.get(cookie)
    if session is None:
        raise LoginRequired
    gateway = service_of(request)
    meta = request_meta_of(request)
    try:
        caller = gateway.authenticate(f"Bearer {session.token}", meta)
    except Unauthenticated:
        console.sessions.close(cookie)
        raise LoginRequired from None
    ensure_role(caller, "console.use")
    return Visit(request, console, gateway, session, caller, meta)


def pending_count(gateway: Gateway, caller: Caller) -> int:
    """Requests waiting for this caller's decision: the badge in the menu."""
    if caller.kind != "employee":
        return 0
    return len(awaiting(gateway, caller))


def awaiting(gateway: Gateway, caller: Caller) -> list[dict[str, Any]]:
    """Pending requests the caller sees as a custodian rather than as a party."""
    return [
        g
        for g in gateway.grants.list_grants(caller, "requested")
        if g["requested_by"] != caller.name and g["subject"] != f"user:{caller.name}"
    ]


def page(handler: F) -> F:
    """Render the gateway's errors as console pages, with the status and title the API
    answers them with (``gateway.http.problems``) and their detail."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return handler(*args, **kwargs)
        except LoginRequired:
            return redirect("/console/login")
        except GatewayError as error:
            request: Request = kwargs["request"]
            problem = problem_of(error)
            if problem.status >= 500:
                log.error("console page %s failed: %s", request.url.path, error.detail)
            return render(
                request,
                console_of(request),
                "error.html",
                status_code=problem.status,
                title=problem.title,
                detail=error.detail,
                rule=error.extensions.get("rule"),
            )

    return wrapper  # type: ignore[return-value]
