"""A real webhook receiver on loopback that checks Standard Webhooks signatures."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from audit import SignatureInvalid, secret_key, verify_delivery


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Receiver:
    """What one receiver accepted; ``refuse`` makes it answer 503 (a receiver that is down
    for the sender, without closing the port under the test's feet)."""

    url: str
    secret: str
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    bad_signatures: int = 0
    refused: int = 0
    refuse: bool = False
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout_s: float = 15.0) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.deliveries) >= count, timeout_s)

    def actions(self) -> list[str]:
        return [str(d["type"]) for d in self.deliveries]


@contextmanager
def receiver() -> Iterator[Receiver]:
    box: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            state = box["r"]
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if state.refuse:
                state.refused += 1
                self.send_response(503)
                self.end_headers()
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                verify_delivery(secret_key(state.secret), headers, body)
            except SignatureInvalid:
                state.bad_signatures += 1
                self.send_response(401)
                self.end_headers()
                return
            with state.arrived:
                state.deliveries.append(json.loads(body))
                state.ids.append(headers["webhook-id"])
                state.arrived.notify_all()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box["r"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook", new_secret())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box["r"]
    finally:
        server.shutdown()
        server.server_close()


def point_rules_at(root: Path, hook: Receiver) -> None:
    """Make the workspace's alert rules post to ``hook``, its secret kept in a 0600 file."""
    secret_file = root / "webhook.secret"
    secret_file.write_text(hook.secret)
    secret_file.chmod(0o600)
    rules = root / "alerts.yaml"
    rules.write_text(
        rules.read_text().replace(
            "webhooks: []",
            f"webhooks:\n  - url: {hook.url}\n    secret: file:{secret_file}\n"
            "    max_backoff_s: 1\n",
        )
    )
