"""Server subprocesses for the benchmarks, on loopback only."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.paths import REPO_ROOT

# -- server subprocesses (loopback only) -----------------------------------------------

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass(frozen=True)
class Served:
    url: str
    process: subprocess.Popen[bytes]

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process (all its threads) so far."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def served(
    command: list[str],
    *,
    port: int,
    log_path: Path,
    ready_path: str = "/healthz",
    timeout_s: float = 60.0,
) -> Iterator[Served]:
    """Start ``command`` (a server on 127.0.0.1:``port``), wait until ``ready_path``
    answers 200, yield it, and stop it afterwards, also on error."""
    import httpx

    base = f"http://{LOOPBACK}:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ)
        )
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"server exited with {process.returncode} before it was ready:\n"
                        + _tail(log_path)
                    )
                try:
                    if httpx.get(base + ready_path, timeout=1.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"server not ready after {timeout_s:.0f}s:\n{_tail(log_path)}"
                    )
                time.sleep(0.1)
            yield Served(base, process)
        finally:
            stop(process)


def stop(process: subprocess.Popen[Any]) -> None:
    """Terminate one process we started, by its handle; kill it if it lingers."""
    from gateway.demo.processes import stop_process

    stop_process(process)
