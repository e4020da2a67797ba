"""The kill -9 harness: a real server, concurrent reads, SIGKILL at random moments.

After every cycle the server is restarted; at the end, every response a client
received must have its audit event, and the log (chain, Merkle tree, checkpoints)
must verify. Used by the `slow` crash test (50 kills) and by the stress script
(``python -m tests.gateway.audit_crash --kills 500``).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace, create_workspace
from tests.serving import free_port

QUERY = orjson.dumps(
    {"columns": ["patient_id", "diagnosis"], "limit": 3, "purpose": SURGICAL_PURPOSE}
)


@dataclass
class Outcome:
    kills: int = 0
    received: dict[int, str] = field(default_factory=dict)  # audit seq -> request id
    failures: int = 0


def start_server(ws: Workspace, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KITELINE_LOG_LEVEL": "WARNING"}
    log_path = ws.root / f"server-{port}.log"
    with log_path.open("wb") as errors:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "--config",
                str(ws.config_path),
                "serve",
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env=env,
        )

    def output() -> str:
        return log_path.read_text(errors="replace")[-3000:]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{output()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                _warm_up(ws, port)
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"the server did not become ready:\n{output()}")


def _warm_up(ws: Workspace, port: int) -> None:
    """One read before the kill clock starts: a new process's first read builds the
    k-anonymity class index (about half a second), which would otherwise eat most of
    the short time each server lives and leave no reads to kill."""
    response = httpx.post(
        f"http://127.0.0.1:{port}/v1/datasets/patients/query",
        content=QUERY,
        headers={"Authorization": f"Bearer {ws.tokens['mei']}"},
        timeout=60,
    )
    response.raise_for_status()


def _reader(
    url: str, token: str, stop: threading.Event, outcome: Outcome, lock: threading.Lock, number: int
) -> None:
    with httpx.Client(
        base_url=url, timeout=5, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        i = 0
        while not stop.is_set():
            i += 1
            request_id = f"crash-{number}-{i}-{random.getrandbits(32):08x}"
            try:
                response = http.post(
                    "/v1/datasets/patients/query",
                    content=QUERY,
                    headers={"X-Request-ID": request_id},
                )
                if response.status_code == 200:
                    orjson.loads(response.content)  # the whole answer arrived
                    with lock:
                        outcome.received[int(response.headers["x-kiteline-audit-seq"])] = request_id
            except (httpx.HTTPError, orjson.JSONDecodeError, ValueError):
                with lock:
                    outcome.failures += 1
                if stop.wait(0.02):
                    return


def crash_cycles(
    ws: Workspace, kills: int, *, readers: int = 3, seed: int = 0, max_delay_s: float = 0.6
) -> Outcome:
    rng = random.Random(seed)
    outcome = Outcome()
    lock = threading.Lock()

    def boot() -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        return start_server(ws, port), port

    # The next server boots while the current one serves (and dies): two processes
    # share the log at times, which the log must survive too.
    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming = pool.submit(boot)
        for cycle in range(kills):
            process, port = upcoming.result()
            if cycle + 1 < kills:
                upcoming = pool.submit(boot)
            _serve_and_kill(ws, process, port, rng, outcome, lock, readers, max_delay_s)
    return outcome


def _serve_and_kill(
    ws: Workspace,
    process: subprocess.Popen[bytes],
    port: int,
    rng: random.Random,
    outcome: Outcome,
    lock: threading.Lock,
    readers: int,
    max_delay_s: float,
) -> None:
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_reader,
            args=(f"http://127.0.0.1:{port}", ws.tokens["mei"], stop, outcome, lock, n),
        )
        for n in range(readers)
    ]
    for thread in threads:
        thread.start()
    time.sleep(rng.uniform(0.01, max_delay_s))
    process.send_signal(signal.SIGKILL)
    process.wait()
    outcome.kills += 1
    stop.set()
    for thread in threads:
        thread.join()


def missing_events(ws: Workspace, outcome: Outcome) -> list[int]:
    with sqlite3.connect(ws.root / "state.db") as conn:
        rows = dict(
            conn.execute("SELECT seq, request_id FROM audit_events WHERE action = 'data.query'")
        )
    return [seq for seq, rid in outcome.received.items() if rows.get(seq) != rid]


def main() -> None:  # the stress target
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=500)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    from click.testing import CliRunner

    from gateway.cli.main import cli

    with tempfile.TemporaryDirectory() as tmp:
        ws = create_workspace(Path(tmp) / "ws")
        outcome = crash_cycles(ws, args.kills, readers=args.readers, seed=args.seed)
        missing = missing_events(ws, outcome)
        result = CliRunner().invoke(cli, ["--config", str(ws.config_path), "audit", "verify"])
        print(  # noqa: T201
            f"kills={outcome.kills} responses={len(outcome.received)} "
            f"client errors={outcome.failures} missing events={len(missing)}"
        )
        print(result.output.strip())  # noqa: T201
        sys.exit(0 if outcome.received and not missing and result.exit_code == 0 else 1)


if __name__ == "__main__":
    main()
