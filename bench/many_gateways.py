"""Governed queries per second from 1, 2 and 3 gateway processes on one PostgreSQL.

Subject: N independent ``kiteline serve`` processes (N = 2, 3) on free loopback ports,
all on one private schema of the PostgreSQL at ``KITELINE_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), serving the demo workspace. Partner
``mei`` asks ``patients`` for 10 rows as JSON. Baseline: one process under the same
load. The load is the same for every N: ``wrk`` (Debian's package) with CONNECTIONS
connections in all, split evenly over the first N of three running processes, for
DURATION_S seconds after a short warm-up. The three configurations take turns for
ROUNDS rounds and each reports its median, so a neighbour's burst of CPU on a shared
machine skews every configuration alike. No target: the ratio (the scaling factor)
is reported. Every process shares
the host's cores with the load generator and PostgreSQL, and every request appends to
the one audit log under one lock, so the factor is bounded by the cores and by that
serialized append.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import common, wrk
from bench.common import DATA_DIR, Result

PROCESSES = (1, 2, 3)
CONNECTIONS = 6
DURATION_S = 4
WARMUP_S = 1
ROUNDS = 3
ROWS = 10
WORK = DATA_DIR / "many_gateways"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    from tests.pg_schemas import private_schema

    base = os.environ.get("KITELINE_TEST_PG_URL", DEFAULT_PG_URL)
    with private_schema(base, f"kl_bench_{uuid.uuid4().hex[:10]}") as url:
        yield url


def workspace(state_url: str) -> Any:
    from gateway.config import load_config
    from gateway.demo.workspace import Workspace, create_workspace, seed_state

    template = create_workspace(DATA_DIR / "demo", port=8787)
    target = WORK / "workspace"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(template.root, target)
    config = target / "kiteline.yaml"
    text = common.lift_row_budgets(config.read_text(encoding="utf-8"))
    config.write_text(text.replace("sqlite:///state.db", state_url), encoding="utf-8")
    tokens = seed_state(load_config(config))
    return Workspace(target, config, tokens)


def serve_command(config: Path, port: int) -> list[str]:
    base = [sys.executable, "-c", "from gateway.cli import main; main()"]
    return [*base, "--config", str(config), "--log-level", "warning", "serve"] + [
        "--host",
        common.LOOPBACK,
        "--port",
        str(port),
    ]


def measure(urls: list[str], script: Path) -> tuple[float, int]:
    """Requests per second answered by all ``urls`` together, and failures."""
    share = [CONNECTIONS // len(urls) + (i < CONNECTIONS % len(urls)) for i in range(len(urls))]
    for warm in [wrk.start(u, script, c, WARMUP_S) for u, c in zip(urls, share, strict=True)]:
        warm.communicate()
    runs = [wrk.start(u, script, c, DURATION_S) for u, c in zip(urls, share, strict=True)]
    total, failed = 0.0, 0
    for run_ in runs:
        report = wrk.report(run_.communicate()[0])
        total += report.rps
        failed += report.failed
    return total, failed


def run() -> list[Result]:
    import orjson

    from gateway.demo.workspace import SURGICAL_PURPOSE

    wrk.require()
    body = orjson.dumps({"purpose": SURGICAL_PURPOSE, "limit": ROWS}).decode()
    samples: dict[int, list[tuple[float, int]]] = {count: [] for count in PROCESSES}
    with pg_schema() as url, contextlib.ExitStack() as stack:
        ws = workspace(url)
        script = wrk.script(
            WORK / "query.lua",
            body,
            {"Content-Type": "application/json", "Authorization": f"Bearer {ws.tokens['mei']}"},
        )
        urls = []
        for i in range(max(PROCESSES)):
            port = common.free_port()
            log = WORK / "logs" / f"serve-{i}.log"
            command = serve_command(ws.config_path, port)
            served = stack.enter_context(common.served(command, port=port, log_path=log))
            urls.append(served.url + "/v1/datasets/patients/query")
        for _ in range(ROUNDS):
            for count in PROCESSES:
                samples[count].append(measure(urls[:count], script))
    rates = {
        count: (statistics.median(r for r, _ in runs), sum(bad for _, bad in runs))
        for count, runs in samples.items()
    }
    base = rates[1][0]
    results = []
    for count in PROCESSES:
        rate, failed = rates[count]
        results.append(
            Result(
                f"governed 10-row queries, {count} gateway process(es) on one PostgreSQL",
                rate,
                "req/s",
                baseline=base if count > 1 else None,
                errors=failed,
                note=f"wrk, {CONNECTIONS} connections in all, median of {ROUNDS} turns of "
                f"{DURATION_S}s ({', '.join(f'{r:.0f}' for r, _ in samples[count])} req/s); "
                f"ratio = scaling factor over 1 process; {os.cpu_count()} cores shared "
                "with wrk and PostgreSQL",
            )
        )
    return results
