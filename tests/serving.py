"""Real server processes for the tests: free loopback ports, readiness, clean stops."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """Terminate a child, killing it if it has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until_ready(
    url: str, process: subprocess.Popen, output: Callable[[], str], timeout: float = 60
) -> None:
    """Poll ``url`` until it answers 200; fail with the child's output if it dies first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{output()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} was not ready within {timeout} s:\n{output()}")
        time.sleep(0.2)


def serve_command(config: Path, port: int) -> list[str]:
    """`kiteline serve` of this checkout, the way the tests run it."""
    command = [sys.executable, "-m", "gateway.cli", "--config", str(config)]
    return [*command, "serve", "--port", str(port)]


@contextmanager
def running(
    command: Sequence[str],
    port: int,
    log: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> Iterator[str]:
    """Run a gateway command serving on ``port``; yield its URL once ``/readyz`` says so."""
    with log.open("wb") as sink:  # the child keeps its own descriptor
        process = subprocess.Popen(
            list(command), cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(
            f"{url}/readyz", process, lambda: log.read_text(errors="replace")[-5000:], timeout
        )
        yield url
    finally:
        stop(process, timeout=20)


@contextmanager
def serving(config: Path) -> Iterator[str]:
    """`kiteline serve` of ``config`` on a free port, its output in a log beside the
    config; yields its URL."""
    port = free_port()
    with running(serve_command(config, port), port, config.with_name(f"serve-{port}.log")) as url:
        yield url


def serve_gateway(
    config: Path,
    log: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> AbstractContextManager[str]:
    """`kiteline serve` (with extra ``args``, e.g. ``--workers 2``) on a free port, its
    output in ``log``, with ``env`` added to this process's environment; yields its URL."""
    port = free_port()
    return running(
        [*serve_command(config, port), *args],
        port,
        log,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
