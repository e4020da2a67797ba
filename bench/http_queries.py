"""Governed 100-row JSON queries per second over loopback, vs a bare endpoint.

Subject: a real ``kiteline serve`` process (one uvicorn worker) on a free port of
127.0.0.1, serving the demo workspace; partner ``mei`` queries ``patients`` for the
purpose "surgical robot training" with ``limit: 100`` (JSON answer). Baseline: a tiny
FastAPI app under the same uvicorn settings that answers the same POST with a fixed
100-row orjson body (the rows the gateway returned). Debian's ``wrk`` drives both with
keep-alive connections (``bench.wrk``; a Python load generator would be the bottleneck
on 2 cores): a warm-up, then a timed run. Target: at least half the bare endpoint's
rate. The server's CPU time per request, measured over the timed run, reads the same
comparison apart from what else the machine runs.

Entry point for the baseline's subprocess: ``python -m bench.http_queries bare --port N
--rows FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from bench import common, wrk
from bench.common import DATA_DIR, Result, StageTimer, Target

DATASET = "patients"
PARTNER = "mei"
PATH = f"/v1/datasets/{DATASET}/query"
ROWS = 100
CONCURRENCY = 4
WARMUP_S = 2
DURATION_S = 10
ROUNDS = 3
TARGET = Target("ratio", ">=", 0.5)  # of the bare endpoint's rate
CPU_TARGET = Target("ratio", "<=", 2.0, "x bare")
WORK = DATA_DIR / "http_queries"

# Filled by run() for profile(): the measured requests per second.
LAST: dict[str, float] = {}


def query_body() -> bytes:
    from gateway.demo.workspace import SURGICAL_PURPOSE

    return orjson.dumps({"purpose": SURGICAL_PURPOSE, "limit": ROWS})


def demo_workspace() -> Any:
    """A fresh copy of the demo workspace (the template is built once, then reused), so
    every run starts from the same state; its row budgets are lifted, since a load test
    of ~1,000 reads of 100 rows would otherwise spend the default daily budget."""
    from gateway.demo.workspace import Workspace, create_workspace

    stamp = DATA_DIR / "demo.state"
    fingerprint = common.state_fingerprint()
    fresh = stamp.exists() and stamp.read_text() == fingerprint
    if not fresh:
        print("building the demo workspace ...", flush=True)
    template = create_workspace(DATA_DIR / "demo", port=8787, reset=not fresh)
    stamp.write_text(fingerprint)
    target = WORK / "workspace"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(template.root, target)
    config = target / "kiteline.yaml"
    config.write_text(common.lift_row_budgets(config.read_text(encoding="utf-8")), "utf-8")
    return Workspace(target, config, dict(template.tokens))


def kiteline_command(config: Path, port: int) -> list[str]:
    # Not the venv's `kiteline` script: it imports the installed (editable) package, which
    # may be another checkout. `python -c` run from the repository root imports this one.
    base = [sys.executable, "-c", "from gateway.cli import main; main()"]
    return [
        *base,
        "--config",
        str(config),
        "--log-level",
        "warning",
        "serve",
        "--host",
        common.LOOPBACK,
        "--port",
        str(port),
    ]


def bare_command(port: int, rows_file: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.http_queries",
        "bare",
        "--port",
        str(port),
        "--rows",
        str(rows_file),
    ]


def _headers(workspace: Any) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {workspace.tokens[PARTNER]}",
        "Content-Type": "application/json",
    }


def _measure(server: common.Served, lua: Path, concurrency: int) -> dict[str, Any]:
    """A warm-up, then one timed wrk run against ``server``, with the server's CPU time
    per request of the timed run."""
    wrk.run(server.url + PATH, lua, concurrency, WARMUP_S)
    before = server.cpu_seconds()
    timed = wrk.run(server.url + PATH, lua, concurrency, DURATION_S)
    after = server.cpu_seconds()
    cpu_ms = None
    if before is not None and after is not None:
        cpu_ms = 1000 * (after - before) / max(timed.requests, 1)
    return {
        "ok": timed.ok,
        "errors": timed.failed,
        "seconds": timed.seconds,
        "rps": timed.ok / timed.seconds,
        "p50_ms": timed.p50_ms,
        "p99_ms": timed.p99_ms,
        "cpu_ms": cpu_ms,
    }


def _first_answer(base: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    import httpx

    response = httpx.post(base + PATH, headers=headers, content=body, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"governed query answered {response.status_code}: {response.text}")
    answer: dict[str, Any] = response.json()
    if len(answer["rows"]) != ROWS or "x-kiteline-audit-seq" not in response.headers:
        raise RuntimeError(f"unexpected answer: {len(answer['rows'])} rows")
    return answer


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median rate, with the medians of its CPU and latency figures and the
    failures of all runs."""
    middle = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
    cpu = [r["cpu_ms"] for r in runs if r["cpu_ms"] is not None]
    return {
        **middle,
        "rates": [r["rps"] for r in runs],
        "errors": sum(r["errors"] for r in runs),
        "cpu_ms": statistics.median(cpu) if cpu else None,
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
    }


def run() -> list[Result]:
    wrk.require()
    body = query_body()
    logs = WORK / "logs"
    levels = (CONCURRENCY, 1)
    rows_file = WORK / "bare_rows.json"

    # Fresh servers per level: a failure left behind by one level must not skew the next.
    # The two servers take turns, so that both see the same machine.
    governed: dict[int, dict[str, Any]] = {}
    bare: dict[int, dict[str, Any]] = {}
    for c in levels:
        workspace = demo_workspace()
        headers = _headers(workspace)
        lua = wrk.script(WORK / "query.lua", body.decode(), headers)
        command = kiteline_command(workspace.config_path, port := common.free_port())
        with common.served(command, port=port, log_path=logs / f"kiteline-{c}.log") as server:
            rows_file.write_bytes(orjson.dumps(_first_answer(server.url, headers, body)))
            bare_cmd = bare_command(bare_port := common.free_port(), rows_file)
            with common.served(bare_cmd, port=bare_port, log_path=logs / f"bare-{c}.log") as base:
                turns: dict[str, list[dict[str, Any]]] = {"governed": [], "bare": []}
                for _ in range(ROUNDS):
                    turns["governed"].append(_measure(server, lua, c))
                    turns["bare"].append(_measure(base, lua, c))
        governed[c], bare[c] = _median_run(turns["governed"]), _median_run(turns["bare"])

    LAST.update(governed_rps=governed[CONCURRENCY]["rps"], bare_rps=bare[CONCURRENCY]["rps"])
    results = []
    for c in levels:
        g, b = governed[c], bare[c]
        note = (
            f"median of {ROUNDS} turns of {DURATION_S}s after {WARMUP_S}s of warm-up; "
            f"governed {', '.join(f'{r:.0f}' for r in g['rates'])} / bare "
            f"{', '.join(f'{r:.0f}' for r in b['rates'])} req/s answered 2xx"
        )
        if g["errors"] or b["errors"]:
            note += (
                f"; FAILED requests: governed {g['errors']}, bare {b['errors']} "
                "(the rate counts 2xx answers only)"
            )
        if c == CONCURRENCY:
            note += (
                "; baseline = a bare FastAPI endpoint returning a fixed 100-row orjson body, "
                "same uvicorn settings (1 worker), same wrk load"
            )
        plural = "connections" if c > 1 else "connection"
        results.append(
            Result(
                f"http_queries.governed_json_100_rows.{c}conn",
                g["rps"],
                "req/s",
                baseline=b["rps"],
                target=TARGET,
                note=f"{c} keep-alive {plural}: {note}",
                row="http_100" if c == CONCURRENCY else "",
                errors=g["errors"],
            )
        )
    for c in levels:
        g, b = governed[c], bare[c]
        if g["cpu_ms"] is not None and b["cpu_ms"] is not None:
            results.append(
                Result(
                    f"http_queries.server_cpu.{c}conn",
                    g["cpu_ms"],
                    "ms/req",
                    baseline=b["cpu_ms"],
                    target=CPU_TARGET if c == CONCURRENCY else None,
                    note="CPU time of the server process (all threads) per request of "
                    "the timed runs (median); steadier than req/s on a busy machine. "
                    "Target: the req/s target read apart from the machine (half the rate "
                    "is twice the CPU per request)"
                    if c == CONCURRENCY
                    else "",
                )
            )
    g, b = governed[CONCURRENCY], bare[CONCURRENCY]
    results.append(
        Result(f"http_queries.p50.{CONCURRENCY}conn", g["p50_ms"], "ms", baseline=b["p50_ms"])
    )
    results.append(
        Result(f"http_queries.p99.{CONCURRENCY}conn", g["p99_ms"], "ms", baseline=b["p99_ms"])
    )
    return results


# -- profile: where one governed 100-row request spends its time -----------------------


def _scope(body: bytes, authorization: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},  # what uvicorn announces
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"user-agent", b"bench"),
            (b"authorization", authorization.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8787),
        "state": {},
    }


async def _asgi_request(app: Any, body: bytes, authorization: str) -> bytes:
    """One request through the ASGI app in-process: no socket, no HTTP parsing."""
    delivered = False
    never = asyncio.Event()
    chunks: list[bytes] = []
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()  # no disconnect: cancelled when the response is done
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(_scope(body, authorization), receive, send)
    if status != 200:
        raise RuntimeError(f"in-process request answered {status}: {b''.join(chunks)[:300]!r}")
    return b"".join(chunks)


# Stages timed inside the service: (owner module, owner attribute or "", function, stage).
# Leaves are disjoint; "of which" stages sit inside a leaf; the three "service:" stages
# are the service's whole share of a request.
_STAGES = (
    ("gateway.service", "Gateway", "authenticate", "service: authenticate"),
    ("gateway.read.chokepoint", "Chokepoint", "read", "service: read (prepare)"),
    ("gateway.read.rows", "RowStream", "chunks", "service: stream"),
    ("gateway.access.principals", "", "authenticate", "auth lookup (API key + principal, SQL)"),
    ("gateway.read.query", "QueryRequest", "model_validate_json", "parse + validate body"),
    ("gateway.access.decisions", "Decider", "decide", "decision (casbin + grants)"),
    ("gateway.access.decisions", "Decider", "snapshot", "  of which: policy version check (SQL)"),
    ("gateway.read.view_cache", "ViewCache", "view", "schema + view"),
    ("gateway.access.budgets", "", "limits_for", "row budget (limits, reserve, settle: SQL)"),
    ("gateway.access.budgets", "", "reserve_rows", "row budget (limits, reserve, settle: SQL)"),
    ("gateway.access.budgets", "", "settle_rows", "row budget (limits, reserve, settle: SQL)"),
    ("gateway.read.chokepoint", "", "plan_rows", "plan"),
    ("gateway.read.chokepoint", "", "grant_filters", "plan"),
    ("gateway.transforms.profile", "BatchTransformer", "__init__", "plan"),
    ("connectors.local", "LocalConnector", "scan", "scan (DuckDB query or cached slice -> Arrow)"),
    ("connectors.derived", "Deriver", "columns", "  of which: derived columns (lookup, slice)"),
    ("connectors.derived", "Deriver", "_build", "  of which: derived blocks built"),
    ("gateway.transforms.profile", "BatchTransformer", "__call__", "transform"),
    ("gateway.transforms.pseudonyms", "", "pseudonymize", "  of which: pseudonymize"),
    ("gateway.transforms.profile", "", "scrub", "  of which: scrub free text"),
    (
        "gateway.transforms.generalization",
        "",
        "generalize",
        "  of which: generalize (here and in the k-anonymity check)",
    ),
    ("gateway.read.encoders", "JsonEncoder", "start", "encode (JSON)"),
    ("gateway.read.encoders", "JsonEncoder", "batch", "encode (JSON)"),
    ("gateway.read.encoders", "JsonEncoder", "finish", "encode (JSON)"),
    ("gateway.auditing.log", "AuditLog", "append", "audit appends"),
    ("gateway.auditing.log", "AuditLog", "append_linked", "audit appends"),
    ("gateway.transforms.kanonymity", "ClassIndex", "kept", "k-anonymity check"),
)


def _breakdown(timer: StageTimer, total: float) -> list[tuple[str, float, str]]:
    """Disjoint stages that add up to ``total``, with their "of which" details."""
    seconds, calls = timer.seconds, timer.calls
    requests = max(calls["service: read (prepare)"], 1)
    service = sum(seconds[s] for s in timer.stages if s.startswith("service: "))
    leaves = [s for s in timer.stages if not s.startswith(("service: ", " "))]
    rows = [
        (s, seconds[s], f"{calls[s] / requests:g} calls/req")
        for s in timer.stages
        if not s.startswith("service: ")
    ]
    rows.append(
        (
            "other service code (glue, digest, errors path)",
            service - sum(seconds[s] for s in leaves),
            "",
        )
    )
    rows.append(("framework (FastAPI/Starlette, middleware, thread hops)", total - service, ""))
    rows.append(("total", total, ""))
    return rows


def _thread_hop_seconds(samples: int = 2000) -> float:
    import anyio.to_thread

    async def hops() -> float:
        for _ in range(50):
            await anyio.to_thread.run_sync(lambda: None)
        started = time.perf_counter()
        for _ in range(samples):
            await anyio.to_thread.run_sync(lambda: None)
        return (time.perf_counter() - started) / samples

    return asyncio.run(hops())


def profile() -> None:
    """A breakdown of one governed 100-row request, in-process and sequential."""
    import anyio.to_thread

    from gateway.config import Settings
    from gateway.http.app import create_app
    from gateway.state.wal import WalCheckpointer

    workspace = demo_workspace()
    body = query_body()
    authorization = f"Bearer {workspace.tokens[PARTNER]}"
    app = create_app(Settings(config=workspace.config_path, log_level="WARNING"))
    requests = 400
    timer = StageTimer()
    hops = {"count": 0}
    original_run_sync = anyio.to_thread.run_sync

    async def counting_run_sync(*args: Any, **kwargs: Any) -> Any:
        hops["count"] += 1
        return await original_run_sync(*args, **kwargs)

    async def drive(count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            await _asgi_request(app, body, authorization)
        return time.perf_counter() - started

    # The server checkpoints its state database's log in a thread of its own (started by
    # the app's lifespan, which in-process requests do not run).
    checkpointer = WalCheckpointer(app.state.gateway.engine)
    checkpointer.start()
    try:
        asyncio.run(drive(50))  # warm-up: caches, pools, DuckDB metadata
        plain_total = asyncio.run(drive(requests))
        common.wrap_stages(timer, _STAGES)
        anyio.to_thread.run_sync = counting_run_sync  # type: ignore[assignment]
        total = asyncio.run(drive(requests))
    finally:
        anyio.to_thread.run_sync = original_run_sync  # type: ignore[assignment]
        timer.restore()
        checkpointer.stop()
    hop = _thread_hop_seconds()
    hops_per_request = hops["count"] / requests

    common.section(
        f"http_queries: one governed {ROWS}-row JSON request, in-process ASGI, "
        f"sequential, mean of {requests}"
    )
    common.print_stages(_breakdown(timer, total), per=requests, total_s=total)
    in_process_ms = 1000 * plain_total / requests
    print(
        f"\n  without stage timers: {in_process_ms:.3f} ms/req in-process; "
        f"{hops_per_request:g} thread hops/req, ~{hop * 1e6:.0f} us each when idle"
    )
    if LAST:
        served_ms = 1000 / LAST["governed_rps"]
        bare_ms = 1000 / LAST["bare_rps"]
        print(
            f"  served by kiteline serve ({CONCURRENCY} connections): {served_ms:.3f} ms/req "
            f"(1/{LAST['governed_rps']:.0f} req/s), so uvicorn, sockets and contention add "
            f"~{served_ms - in_process_ms:.3f} ms/req; a whole bare request: {bare_ms:.3f} ms"
        )
    _print_cprofile(app, body, authorization)


def _print_cprofile(app: Any, body: bytes, authorization: str) -> None:
    """cProfile of whole requests, with the gateway's own thread hops (``run_in_threadpool``
    in the routes, the streaming body's iteration) run inline so that one thread sees
    the service's work: top functions by own time."""
    import importlib
    import pkgutil

    import starlette.responses

    import gateway.http.routes

    async def inline(func: Any, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    async def iterate_inline(iterator: Any) -> Any:
        for item in iterator:
            yield item

    routes = [
        importlib.import_module(f"gateway.http.routes.{m.name}")
        for m in pkgutil.iter_modules(gateway.http.routes.__path__)
    ]
    saved: list[tuple[Any, str, Any]] = [
        (m, "run_in_threadpool", m.run_in_threadpool)
        for m in routes
        if hasattr(m, "run_in_threadpool")
    ]
    saved.append(
        (starlette.responses, "iterate_in_threadpool", starlette.responses.iterate_in_threadpool)
    )
    requests = 300
    profiler = cProfile.Profile()
    try:
        for module, attr, _ in saved[:-1]:
            setattr(module, attr, inline)
        starlette.responses.iterate_in_threadpool = iterate_inline  # type: ignore[assignment]

        async def drive() -> None:
            for _ in range(requests):
                await _asgi_request(app, body, authorization)

        profiler.enable()
        asyncio.run(drive())
        profiler.disable()
    finally:
        for module, attr, value in saved:
            setattr(module, attr, value)
    common.print_cprofile(
        profiler,
        f"cProfile, {requests} requests with the thread hops run inline, top by own time:",
        limit=25,
    )


# -- subprocess entry points -----------------------------------------------------------


def _bare_server(port: int, rows_file: Path) -> None:
    """A tiny FastAPI app answering the benchmark's POST with a fixed 100-row body."""
    import uvicorn

    payload = orjson.loads(rows_file.read_bytes())
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.post(PATH)
    async def rows(request: Request) -> Response:
        await request.body()
        return Response(orjson.dumps(payload), media_type="application/json")

    uvicorn.run(app, host=common.LOOPBACK, port=port, log_level="warning", access_log=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_queries")
    sub = parser.add_subparsers(dest="command", required=True)
    bare = sub.add_parser("bare", help="serve the bare baseline endpoint")
    bare.add_argument("--port", type=int, required=True)
    bare.add_argument("--rows", type=Path, required=True)
    args = parser.parse_args(argv)
    _bare_server(args.port, args.rows)


if __name__ == "__main__":
    main()
