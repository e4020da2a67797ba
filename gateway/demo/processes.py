"""The local servers a demo runs as child processes: a free loopback port, the wait
for the server to listen, and stopping it when the demo ends.

Every server is our own child process and is stopped when its block ends, also when
the demo is stopped with SIGTERM.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class DemoStoreError(Exception):
    """The hosted-store demo cannot be set up; the message says what to do."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_listening(
    port: int,
    process: subprocess.Popen[bytes],
    log_path: Path,
    *,
    name: str,
    within_s: float,
    poll_s: float,
) -> None:
    """Return once ``process`` accepts connections on ``port``, or raise DemoStoreError
    when it exits first or is not listening within ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoStoreError(f"the {name} exited early; see {log_path}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(poll_s)
    raise DemoStoreError(f"the {name} did not start within {within_s:.0f}s; see {log_path}")


def stop_process(process: subprocess.Popen[Any]) -> None:
    """Terminate one process we started, by its handle; kill it if it lingers."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a server started in a process group of its own, with every process in it."""
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=10)


@contextmanager
def terminate_exits() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while the server runs, so that it is stopped too.

    uvicorn re-raises the signal that stopped it once it has shut down; with the
    default handler that would end this process before it could stop its server.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def exit_cleanly(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, exit_cleanly)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def prepare_root(root: Path, kind: str, reset: bool) -> bool:
    """Empty the workspace on reset and refuse one built for another store; True if new."""
    if reset and root.exists():
        shutil.rmtree(root)
    config = root / "kiteline.yaml"
    if config.exists():
        text = config.read_text(encoding="utf-8")
        match = re.search(r"(?m)^  demo:\n    kind: (\w+)", text)
        built_for = match.group(1) if match else "unknown"
        if built_for != kind:
            raise DemoStoreError(
                f"{root} holds a demo for the {built_for!r} store; "
                "pass --reset or choose another --workspace"
            )
        return False
    root.mkdir(parents=True, exist_ok=True)
    return True
