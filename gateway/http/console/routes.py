"""The console's pages, one module per audience: the door (login), the officers'
(the audit log and its live tail), the custodians' and the admins'. Handlers are plain
functions (FastAPI runs them in its thread pool) that call the gateway's services, as
the API routes do."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.http.console import admins, custodians, login, officers, tail
from gateway.http.console.pages import Visit

router = APIRouter()
for pages in (login, officers, tail, custodians, admins):
    router.include_router(pages.router)

__all__ = ["router", "Visit"]
