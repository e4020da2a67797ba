"""The console's pages, one module per audience: the door (login), the officers'
(the audit log and its live tail), the custodians' and the admins'. Handlers are plain
functions (FastAPI runs them in its thread pool) that call the gateway's services, as
the API routes do."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.http.console.admins import router as admins
from gateway.http.console.custodians import router as custodians
from gateway.http.console.login import router as login
from gateway.http.console.officers import router as officers
from gateway.http.console.pages import Visit
from gateway.http.console.tail import router as tail

router = APIRouter()
for pages in (login, officers, tail, custodians, admins):
    router.include_router(pages)

__all__ = ["router", "Visit"]
