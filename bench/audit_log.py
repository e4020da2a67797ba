"""Audit log benchmarks: appends per second (group commit, SQLite and PostgreSQL),
verify throughput, and the audit latency added to one governed request.

``python bench/audit_log.py`` (standalone) or ``python -m bench audit_log``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit.redaction import Redactor  # noqa: E402
from gateway.auditing.log import AuditLog  # noqa: E402
from gateway.state.database import create_state_engine, migrate  # noqa: E402
from gateway.state.wal import WalCheckpointer  # noqa: E402

try:  # the shared result type, when bench/common.py is present
    from bench.common import Result, Target
except ImportError:  # standalone

    @dataclass(frozen=True)
    class Target:  # type: ignore[no-redef]
        on: str
        op: str
        bound: float
        unit: str = ""

    @dataclass(frozen=True)
    class Result:  # type: ignore[no-redef]
        name: str
        value: float
        unit: str
        baseline: float | None = None
        target: Any = None
        note: str = ""
        errors: int = 0

        @property
        def ratio(self) -> float | None:
            return self.value / self.baseline if self.baseline else None


THREADS = 32
EVENT = {
    "columns": ["patient_id", "diagnosis"],
    "profile": "anonymized",
    "limit": 100,
    "purpose": "surgical robot training",
}


def _log(url: str) -> AuditLog:
    engine = create_state_engine(url)
    migrate(engine)
    return AuditLog(engine, Redactor(b"b" * 32), policy_version="bench", timeout_s=10)


def _appends_per_second(log: AuditLog, total: int, threads: int = THREADS) -> float:
    each = total // threads

    def worker() -> None:
        for i in range(each):
            log.append(
                "data.query",
                actor="mei",
                dataset="patients",
                module="imaging",
                decision="allow",
                reasons=["grant 3"],
                i=i,
                **EVENT,
            )

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return each * threads / (time.perf_counter() - started)


def _bare_sqlite_chain(path: Path, total: int) -> float:
    """The baseline: one hash-chained row per transaction, raw sqlite3, one thread."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE log (seq INTEGER PRIMARY KEY, body TEXT, hash TEXT)")
    prev = b"\0" * 32
    body = b'{"action":"data.query","actor":"mei","dataset":"patients"}'
    started = time.perf_counter()
    for seq in range(1, total + 1):
        prev = hashlib.sha256(prev + body).digest()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO log VALUES (?, ?, ?)", (seq, body.decode(), prev.hex()))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return total / elapsed


def _request_latency_ms(log: AuditLog, requests: int = 2000) -> float:
    """p50 of the audit work of one governed read: its data.query and data.read events."""
    samples = []
    for i in range(requests):
        started = time.perf_counter()
        seq = log.append(
            "data.query", actor="mei", dataset="patients", decision="allow", i=i, **EVENT
        )
        log.append(
            "data.read",
            actor="mei",
            dataset="patients",
            decision="allow",
            query_seq=seq,
            rows=100,
            digest="sha256:" + "0" * 64,
            complete=True,
        )
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def _row(key: str) -> dict[str, str]:
    """The target row a result measures, when the shared result type has the field."""
    return {"row": key} if "row" in getattr(Result, "__dataclass_fields__", {}) else {}


def _sha256_events_per_second(log: AuditLog) -> float:
    """Events per second that one SHA-256 stream over the same bodies would allow."""
    bodies = [body for batch in log.record_batches() for body in batch.bodies]
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        digest = hashlib.sha256()
        for body in bodies:
            digest.update(body)
        digest.digest()
        runs.append(time.perf_counter() - started)
    return len(bodies) / statistics.median(runs)


def _appends_result(
    store: str, rate: float, baseline: float | None, least: int, note: str
) -> Result:
    """The group-committed append rate on ``store``, against its target of ``least``."""
    return Result(
        f"audit appends, {store}, group commit",
        rate,
        "events/s",
        baseline,
        Target("value", ">=", least, "events/s"),
        note=note,
        **_row("audit_append"),
    )


def run() -> list[Result]:
    results = []
    quick = os.environ.get("KITELINE_BENCH_QUICK", "") not in ("", "0")
    default = "60000" if quick else "1000000"
    total = int(os.environ.get("KITELINE_BENCH_AUDIT_EVENTS", default))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        baseline = _bare_sqlite_chain(root / "bare.db", min(total, 20000))
        log = _log(f"sqlite:///{root / 'state.db'}")
        # As in the server, the log's checkpoints run in a thread of their own.
        checkpointer = WalCheckpointer(log.engine)
        checkpointer.start()
        try:
            rate = _appends_per_second(log, total)
        finally:
            checkpointer.stop()
        note = f"{THREADS} threads; baseline: bare hash-chained sqlite3"
        results.append(_appends_result("SQLite", rate, baseline, 30_000, note))
        verify_runs = []
        for _ in range(3):
            started = time.perf_counter()
            report = log.verify()
            verify_runs.append(time.perf_counter() - started)
            assert report.ok
        verify_rate = report.events / statistics.median(verify_runs)
        results.append(
            Result(
                "audit verify (chain, leaves, tree, columns)",
                verify_rate,
                "events/s",
                _sha256_events_per_second(log),
                Target("value", ">=", 300_000, "events/s"),
                note=f"{report.events} events from SQLite, median of 3; baseline: one "
                "SHA-256 over the same bodies, streamed (the physical limit)",
                **_row("audit_verify"),
            )
        )
        timed = _log(f"sqlite:///{root / 'latency.db'}")
        latency = _request_latency_ms(timed)
        timed.close()
        timed.engine.dispose()
        results.append(
            Result(
                "audit latency added per governed read (p50)",
                latency,
                "ms",
                None,
                Target("value", "<=", 0.3, "ms"),
                note="data.query + data.read appends, one caller, SQLite",
                **_row("audit_append"),
            )
        )
        log.close()
        log.engine.dispose()
    pg = os.environ.get("KITELINE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        from tests.pg_schemas import private_schema

        with private_schema(pg, f"bench_{os.getpid()}") as url:
            log = _log(url)
            rate = _appends_per_second(log, total // 2)
            results.append(_appends_result("PostgreSQL", rate, None, 10_000, f"{THREADS} threads"))
            log.close()
            log.engine.dispose()
    except Exception as exc:  # no server: report, do not fail the other numbers
        print(f"PostgreSQL benchmark skipped: {type(exc).__name__}: {exc}")
    return results


def main() -> None:
    for result in run():
        ratio = f"{result.ratio:.2f}" if result.ratio else "-"
        target = result.target
        bound = f"{target.op} {target.bound:g} {target.unit}" if target else "-"
        print(
            f"{result.name:<48} {result.value:>12,.2f} {result.unit:<9} "
            f"baseline {result.baseline or 0:>10,.0f} ratio {ratio:>6} target {bound}"
        )


if __name__ == "__main__":
    main()
