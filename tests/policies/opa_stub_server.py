"""A stand-in for an OPA server, for tests: no OPA binary can be installed here.

It speaks the part of OPA's REST API that kiteline and opa-python-client use, over real
HTTP (stdlib ``http.server`` in a thread), and evaluates with the embedded RegoEngine,
so a parity test exercises the client, the wire format and the error handling while the
Rego semantics stay those of rego-cpp:

* ``PUT /v1/policies/{id}`` (text/plain): parse the module, store it; a syntax error is
  answered 400 with OPA's ``{"code", "message", "errors": [{"location": {"row"}}]}``.
* ``GET /v1/policies`` and ``GET /v1/policies/{id}``: ``{"result": ...}`` with ``raw``.
* ``DELETE /v1/policies/{id}``.
* ``POST /v1/data/{path}`` with ``{"input": ...}``: ``{"result": ...}`` for
  ``kiteline/access/decision``, ``{}`` (OPA's "undefined") for any other path.
* ``GET /health``.

Knobs for failure tests: ``delay_s`` (answer data queries late), ``fail_status``
(answer data queries with this status), ``drop_result`` (answer ``{}``), ``token``
(require ``Authorization: Bearer <token>``), ``requires`` (refuse a module until the
modules it calls are loaded, as OPA's compiler does for undefined functions).
"""

from __future__ import annotations

import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from policies.bundle import DECISION_PATH, PolicyFile, PolicySet
from policies.errors import PolicyCompileError, PolicyError
from policies.rego import RegoEngine, check_syntax


class OpaStub:
    """An OPA-compatible server on 127.0.0.1; use as a context manager."""

    def __init__(self, *, token: str | None = None) -> None:
        self.token = token
        self.delay_s = 0.0
        self.fail_status: int | None = None
        self.drop_result = False
        self.requires: dict[str, set[str]] = {}
        self.requests: list[tuple[str, str]] = []
        self._modules: dict[str, str] = {}
        self._engine: RegoEngine | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> OpaStub:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            if self._engine is not None:
                self._engine.close()

    # --- the API, independent of HTTP ---------------------------------------------------

    def put_policy(self, policy_id: str, text: str) -> tuple[int, dict[str, Any]]:
        try:
            check_syntax(policy_id, text)
        except PolicyCompileError as exc:
            return HTTPStatus.BAD_REQUEST, {
                "code": "invalid_parameter",
                "message": "error(s) occurred while compiling module(s)",
                "errors": [
                    {
                        "code": "rego_parse_error",
                        "message": exc.message,
                        "location": {"file": policy_id, "row": exc.line, "col": 1},
                    }
                ],
            }
        with self._lock:
            missing = sorted(self.requires.get(policy_id, set()) - self._modules.keys())
            if missing:
                return HTTPStatus.BAD_REQUEST, {
                    "code": "invalid_parameter",
                    "message": "error(s) occurred while compiling module(s)",
                    "errors": [
                        {
                            "code": "rego_type_error",
                            "message": f"undefined function from {', '.join(missing)}",
                            "location": {"file": policy_id, "row": 1, "col": 1},
                        }
                    ],
                }
            self._modules[policy_id] = text
            self._replace_engine(None)
        return HTTPStatus.OK, {}

    def delete_policy(self, policy_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if self._modules.pop(policy_id, None) is None:
                return _not_found(policy_id)
            self._replace_engine(None)
        return HTTPStatus.OK, {}

    def list_policies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"id": i, "raw": text, "ast": {}} for i, text in sorted(self._modules.items())]

    def query(self, path: str, document: Any) -> tuple[int, dict[str, Any]]:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_status is not None:
            return self.fail_status, {"code": "internal_error", "message": "told to fail"}
        if self.drop_result or path.strip("/") != DECISION_PATH:
            return HTTPStatus.OK, {}
        try:
            engine = self._current_engine()
            if engine is None:
                return HTTPStatus.OK, {}
            return HTTPStatus.OK, {"result": engine.evaluate(document)}
        except PolicyError as exc:
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"code": "internal_error", "message": str(exc)}

    def _current_engine(self) -> RegoEngine | None:
        with self._lock:
            if self._engine is None and self._modules:
                modules = tuple(
                    PolicyFile(name=i, text=text, path=Path(i))
                    for i, text in sorted(self._modules.items())
                )
                policy_set = PolicySet(directory=Path("opa-stub"), modules=modules, tests=())
                self._replace_engine(RegoEngine(policy_set, workers=2))
            return self._engine

    def _replace_engine(self, engine: RegoEngine | None) -> None:
        if self._engine is not None:
            self._engine.close()
        self._engine = engine


def _not_found(what: str) -> tuple[int, dict[str, Any]]:
    return HTTPStatus.NOT_FOUND, {"code": "resource_not_found", "message": f"{what} not found"}


def _handler_for(stub: OpaStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            """Quiet: the tests read ``stub.requests`` instead."""

        def _reply(self, status: int, body: Any) -> None:
            payload = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _authorized(self) -> bool:
            if stub.token is None or self.headers.get("Authorization") == f"Bearer {stub.token}":
                return True
            self._reply(HTTPStatus.UNAUTHORIZED, {"code": "unauthorized", "message": "bad token"})
            return False

        def _route(self, method: str) -> None:
            stub.requests.append((method, self.path))
            body = self._body()
            if not self._authorized():
                return
            path = self.path.split("?", 1)[0]
            if method == "GET" and path == "/health":
                self._reply(HTTPStatus.OK, {})
            elif path.rstrip("/") == "/v1/policies" and method == "GET":
                self._reply(HTTPStatus.OK, {"result": stub.list_policies()})
            elif path.startswith("/v1/policies/"):
                policy_id = path.removeprefix("/v1/policies/")
                if method == "PUT":
                    self._reply(*stub.put_policy(policy_id, body.decode("utf-8")))
                elif method == "DELETE":
                    self._reply(*stub.delete_policy(policy_id))
                else:
                    found = [p for p in stub.list_policies() if p["id"] == policy_id]
                    self._reply(
                        *((HTTPStatus.OK, {"result": found[0]}) if found else _not_found(policy_id))
                    )
            elif path.startswith("/v1/data/") and method == "POST":
                try:
                    document = json.loads(body or b"{}").get("input")
                except (ValueError, AttributeError):
                    self._reply(
                        HTTPStatus.BAD_REQUEST, {"code": "invalid_parameter", "message": "bad JSON"}
                    )
                    return
                self._reply(*stub.query(path.removeprefix("/v1/data/"), document))
            else:
                self._reply(HTTPStatus.NOT_FOUND, {"code": "resource_not_found", "message": path})

        def do_GET(self) -> None:
            self._route("GET")

        def do_PUT(self) -> None:
            self._route("PUT")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler
