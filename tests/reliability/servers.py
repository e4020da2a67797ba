"""Real servers for the drills: a ``kiteline serve`` process, a TCP proxy that can
refuse connections on demand, and a policy server that accepts and never answers."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from gateway.demo.workspace import Workspace
from tests.gateway.audit_crash import free_port, start_server
from tests.serving import stop as stop_server

UNLIMITED = "gateway:\n  rate_limits: {per_ip: null, per_principal: null}\n"


def configure(workspace: Workspace, lines: str) -> None:
    """Insert ``lines`` (indented YAML) at the top of the ``gateway:`` section."""
    text = workspace.config_path.read_text(encoding="utf-8")
    workspace.config_path.write_text(text.replace("gateway:\n", "gateway:\n" + lines, 1))


@contextlib.contextmanager
def serving(workspace: Workspace) -> Iterator[str]:
    """A real server on a free port; its base URL. Stopped (and waited for) after."""
    with server_process(workspace) as (url, _):
        yield url


@contextlib.contextmanager
def server_process(workspace: Workspace) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    process: subprocess.Popen[bytes] = start_server(workspace, port)
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        stop_server(process, timeout=20)


@dataclass
class Proxy:
    """Forwards 127.0.0.1:port to a target; ``refuse()`` closes every connection and the
    listener (new ones are refused), ``accept()`` listens again on the same port."""

    target: tuple[str, int]
    port: int = field(default_factory=free_port)
    _listener: socket.socket | None = None
    _links: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._serve, args=(listener,), daemon=True).start()

    def refuse(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            links, self._links = self._links, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for link in links:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
            link.close()

    def _serve(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._links += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a stalled dependency)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
