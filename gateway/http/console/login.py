"""The console's door: login, logout and the home page."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.access.permissions import ensure_role
from gateway.errors import AccessDenied, Unauthenticated
from gateway.http.console.forms import Csrf, FormText
from gateway.http.console.pages import console_of, page, redirect, render, visit
from gateway.http.console.sessions import ABSOLUTE_S, COOKIE, LOGIN_COOKIE, same_secret
from gateway.http.routes.deps import request_meta_of, service_of

router = APIRouter(prefix="/console", include_in_schema=False)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


# -- login and logout --------------------------------------------------------------------


@router.get("/login")
@page
def login_form(request: Request) -> Response:
    if console_of(request).sessions.get(request.cookies.get(COOKIE)) is not None:
        return redirect("/console")
    nonce = secrets.token_urlsafe(32)
    response = render(request, console_of(request), "login.html", csrf=nonce, error=None)
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=600,
        path="/console/login",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.post("/login")
@page
def login(request: Request, token: FormText = "", csrf: Csrf = "") -> Response:
    console = console_of(request)
    gateway = service_of(request)
    meta = request_meta_of(request)
    if not same_secret(csrf, request.cookies.get(LOGIN_COOKIE)):
        raise AccessDenied("the login form's CSRF token is missing or wrong", rule="csrf")
    try:
        caller = gateway.authenticate(f"Bearer {token.strip()}", meta)
    except Unauthenticated:
        return render(
            request,
            console,
            "login.html",
            status_code=401,
            csrf=request.cookies.get(LOGIN_COOKIE),
            error="That token is invalid, revoked, or its principal is not active.",
        )
    try:
        ensure_role(caller, "console.use")
    except AccessDenied as refused:
        gateway.grants.record(
            "console.login", meta=meta, caller=caller, decision="deny", reasons=[refused.detail]
        )
        raise
    cookie, _ = console.sessions.open(token.strip())
    gateway.grants.record("console.login", meta=meta, caller=caller, decision="allow")
    response = redirect("/console")
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(ABSOLUTE_S),
        path="/console",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/console/login")
    return response


@router.post("/logout")
@page
def logout(request: Request, csrf: Csrf = "") -> Response:
    v = visit(request)
    v.check_csrf(csrf)
    v.console.sessions.close(request.cookies.get(COOKIE))
    v.gateway.grants.record("console.logout", meta=v.meta, caller=v.caller, decision="allow")
    response = redirect("/console/login")
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("")
@page
def home(request: Request) -> Response:
    v = visit(request)
    return v.render("home.html", title="Console")
