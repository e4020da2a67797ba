"""The officers', custodians' and admins' web console at ``/console``.

Server-rendered pages (Jinja2) with htmx, both shipped in the package: nothing is
fetched from elsewhere, so the console works air-gapped.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from gateway.http.console.pages import HERE, Console
from gateway.http.console.routes import router


def install(app: FastAPI, console: Console | None = None) -> None:
    app.state.console = console or Console()
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")


__all__ = ["install", "Console"]
