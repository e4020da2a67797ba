"""A bounded loopback load test: mixed governed reads, grant requests and audit searches.

A real ``kiteline serve`` process on the demo workspace (SQLite state, or PostgreSQL
with ``--state URL``: a private schema is created there and dropped afterwards) is
driven at each concurrency in turn for ``--seconds`` (at most 60 s in all). Each request
carries its own request id; afterwards every answered request (any status) must have
an event with that id in the audit log. Prints, per concurrency: requests per second,
p50 and p99 latency, errors (5xx, transport failures) and unaudited answers.

    python -m bench.stress [--state postgresql://...] [--seconds 20] [--concurrency 16 64]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import orjson

MAX_TOTAL_S = 60.0
GRANT = {"dataset": "patients", "profile": "anonymized", "days": 7}


def mix(purpose: str) -> list[tuple[str, str, str, dict[str, object]]]:
    read = orjson.dumps({"columns": ["patient_id", "diagnosis"], "limit": 20, "purpose": purpose})
    search = {"params": {"limit": "20", "actor": "mei"}}
    # Of every twelve requests: eight reads, a grant request, a grant listing, two audit
    # searches (each grant request changes the grants every later decision is made on).
    return [
        *[("mei", "POST", "/v1/datasets/patients/query", {"content": read})] * 4,
        ("lin", "POST", "/v1/grants", {"json": {**GRANT, "purpose": purpose}}),
        ("victor", "GET", "/v1/audit/events", search),
        *[("mei", "POST", "/v1/datasets/patients/query", {"content": read})] * 4,
        ("alice", "GET", "/v1/grants", {}),
        ("victor", "GET", "/v1/audit/events", search),
    ]


async def drive(
    base: str, tokens: dict[str, str], purpose: str, concurrency: int, seconds: float, tag: str
) -> tuple[list[tuple[int, float, str]], int]:
    requests = mix(purpose)
    answers: list[tuple[int, float, str]] = []
    failures = 0
    deadline = time.monotonic() + seconds
    # One client, and so one connection pool, per connection: a shared pool's
    # bookkeeping grows with the connections it holds (every request looks at each of
    # them), so at high concurrency the load generator, on the same cores as the
    # server, would measure its own cost rather than the server's.
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    async def worker(number: int) -> None:
        nonlocal failures
        i = 0
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=one) as http:
            while time.monotonic() < deadline:
                who, method, path, kwargs = requests[(number + i) % len(requests)]
                i += 1
                request_id = f"{tag}-{number}-{i:07d}"
                headers = {"Authorization": f"Bearer {tokens[who]}", "X-Request-ID": request_id}
                started = time.perf_counter()
                try:
                    response = await http.request(method, path, headers=headers, **kwargs)
                except httpx.HTTPError:
                    failures += 1
                    continue
                answers.append((response.status_code, time.perf_counter() - started, request_id))

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return answers, failures


def audited_ids(state_url: str, root: Path) -> set[str]:
    if state_url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(state_url) as conn:
            rows = conn.execute("SELECT body::json->>'request_id' FROM audit_events").fetchall()
    else:
        import sqlite3

        with sqlite3.connect(root / "state.db") as conn:
            rows = conn.execute("SELECT json_extract(body, '$.request_id') FROM audit_events")
            rows = rows.fetchall()
    return {r[0] for r in rows if r[0]}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", default=None, help="a PostgreSQL URL (default: SQLite)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    args = parser.parse_args(argv)
    seconds = min(args.seconds, MAX_TOTAL_S / len(args.concurrency))

    from gateway.config import load_config
    from gateway.demo.workspace import SURGICAL_PURPOSE, create_workspace, seed_state
    from tests.gateway.audit_crash import free_port, start_server

    with tempfile.TemporaryDirectory(prefix="kiteline-stress-") as tmp:
        root = Path(tmp) / "ws"
        workspace = create_workspace(root)
        state_url = f"sqlite:///{root / 'state.db'}"
        schema = None
        text = workspace.config_path.read_text(encoding="utf-8")
        if args.state:
            import psycopg

            schema = f"kl_stress_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(args.state, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            state_url = (
                f"{args.state}{'&' if '?' in args.state else '?'}options=-csearch_path%3D{schema}"
            )
            text = text.replace("state_url: sqlite:///state.db", f'state_url: "{state_url}"', 1)
        # Load from one address as a few principals: the defaults' rate limits are lifted.
        text = text.replace(
            "gateway:\n", "gateway:\n  rate_limits: {per_ip: null, per_principal: null}\n", 1
        )
        workspace.config_path.write_text(text, encoding="utf-8")
        tokens = workspace.tokens
        if args.state:
            tokens = seed_state(load_config(workspace.config_path))
            workspace = type(workspace)(workspace.root, workspace.config_path, tokens)
        port = free_port()
        process = start_server(workspace, port)
        base = f"http://127.0.0.1:{port}"
        kind = "PostgreSQL" if args.state else "SQLite"
        results = []
        try:
            for concurrency in args.concurrency:
                tag = f"stress{concurrency}"
                started = time.monotonic()
                answers, failures = asyncio.run(
                    drive(base, tokens, SURGICAL_PURPOSE, concurrency, seconds, tag)
                )
                results.append((concurrency, answers, failures, time.monotonic() - started))
        finally:
            process.terminate()
            process.wait(timeout=30)
        recorded = audited_ids(state_url, root)
        if schema is not None:
            import psycopg

            with psycopg.connect(args.state, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    out = sys.stdout
    out.write(f"kiteline stress, {kind} state, {seconds:g} s per level, loopback\n")
    out.write(
        f"{'concurrent':>10} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'5xx':>5} {'failed':>6} {'unaudited':>9}  statuses\n"
    )
    bad = 0
    for concurrency, answers, failures, elapsed in results:
        latencies = [a[1] * 1000 for a in answers]
        errors = sum(1 for a in answers if a[0] >= 500)
        unaudited = sum(1 for a in answers if a[2] not in recorded)
        statuses = Counter(a[0] for a in answers)
        bad += errors + failures + unaudited
        out.write(
            f"{concurrency:>10} {len(answers):>9} {len(answers) / elapsed:>8.0f} "
            f"{statistics.median(latencies) if latencies else float('nan'):>8.1f} "
            f"{percentile(latencies, 0.99):>8.1f} {errors:>5} {failures:>6} {unaudited:>9}  "
            f"{dict(sorted(statuses.items()))}\n"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
