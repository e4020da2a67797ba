"""HTTP load from Debian's ``wrk``: a C load generator, so that on 2 cores the client is
not what limits the rate (a Python one is).

``script`` writes the Lua file that makes every request the same POST; ``start`` runs
wrk in the background; ``report`` reads what it printed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class WrkRun:
    """One wrk run: completed requests, their rate, failures and latency percentiles."""

    requests: int
    seconds: float
    rps: float
    # Non-2xx answers plus socket errors (connect, read, write, timeout).
    failed: int
    p50_ms: float
    p99_ms: float

    @property
    def ok(self) -> int:
        return self.requests - self.failed


def require() -> None:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: `make wrk` or `apt-get install wrk`")


def script(path: Path, body: str, headers: dict[str, str]) -> Path:
    """A Lua script making every request a POST of ``body`` with ``headers``."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body)}"]
    lines += [f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _lua_string(text: str) -> str:
    """``text`` as a Lua long string, taken verbatim (no escapes to get wrong)."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def start(url: str, lua: Path, connections: int, seconds: float) -> subprocess.Popen[str]:
    """wrk on one thread with ``connections`` keep-alive connections for ``seconds``."""
    return subprocess.Popen(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(lua),
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run(url: str, lua: Path, connections: int, seconds: float) -> WrkRun:
    return report(start(url, lua, connections, seconds).communicate()[0])


def report(output: str) -> WrkRun:
    """What a wrk run printed, read; an error naming the output when it is not wrk's."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if done is None or rate is None:
        raise RuntimeError(f"wrk printed no rate:\n{output}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    failed = int(bad.group(1)) if bad else 0
    if sockets:
        failed += sum(int(n) for n in sockets.groups())
    return WrkRun(
        requests=int(done.group(1)),
        seconds=float(done.group(2)) * _UNITS[done.group(3)] / 1000,
        rps=float(rate.group(1)),
        failed=failed,
        p50_ms=_percentile(output, 50),
        p99_ms=_percentile(output, 99),
    )


def _percentile(output: str, percent: int) -> float:
    found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    if found is None:
        return float("nan")
    return float(found.group(1)) * _UNITS[found.group(2)]
