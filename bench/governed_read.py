"""Governed bulk reads vs a plain DuckDB read of the same Parquet file, at several sizes.

Subject: ``Gateway.read`` (the service chokepoint HTTP uses, minus the socket) of four
columns over every row as an Arrow IPC stream, every chunk consumed, for an employee
under a pseudonymized grant (``identifier`` becomes a keyed pseudonym; 100,000 distinct
values). Baseline: ``duckdb`` reading the same four columns of the same file into an
Arrow table. Sizes: 250k and 1M rows with ``--quick``; 1M, 4M, 10M and 16M otherwise.

Three governed cases per size. ``warm``: the same recipient read the file before (its
pseudonyms and the file are cached). ``warm.no_file_cache``: the same, in a gateway
whose local file cache holds no file, as for every file beyond the cache's bound.
``first_read``: the first read of a gateway opened just before it (nothing cached;
opening is not timed). Targets: warm <= 1.5x, first read <= 2x. Each case is the median
of ``REPEATS`` runs, the warm cases alternating with the baseline. The medians are
plotted against rows as ``docs/images/governed_read_cost[_quick].png``.
"""

from __future__ import annotations

import cProfile
import itertools
import time
from collections.abc import Callable

import duckdb
import orjson
import pyarrow as pa

from bench import common
from bench.common import LargeWorkspace, Result, StageTimer, Target
from gateway.auditing.log import RequestMeta
from gateway.config import Settings
from gateway.http.app import create_app
from gateway.service import Gateway

COLUMNS = ("identifier", "event_date", "category", "amount")
ARROW = "application/vnd.apache.arrow.stream"
REPEATS = 3
WARM_TARGET = Target("ratio", "<=", 1.5)
COLD_TARGET = Target("ratio", "<=", 2.0)
QUICK_SIZES = (250_000, 1_000_000)
FULL_SIZES = (1_000_000, 4_000_000, 10_000_000, 16_000_000)


def open_gateway(workspace: LargeWorkspace) -> Gateway:
    """The service exactly as ``create_app`` builds it for HTTP (close it when done)."""
    app = create_app(Settings(config=workspace.config_path, log_level="WARNING"))
    gateway: Gateway = app.state.gateway
    return gateway


def governed_reader(gateway: Gateway, workspace: LargeWorkspace) -> Callable[[], list[bytes]]:
    """A function doing one governed read (authentication included); returns the chunks."""
    body = orjson.dumps({"columns": list(COLUMNS), "limit": workspace.rows})
    authorization = f"Bearer {workspace.token}"
    counter = itertools.count(1)

    def read() -> list[bytes]:
        meta = RequestMeta(request_id=f"bench-governed-read-{next(counter)}", client="bench")
        caller = gateway.authenticate(authorization, meta)
        result = gateway.read(caller, workspace.dataset, body, ARROW, meta)
        return list(result.chunks)

    return read


def cold_reader(gateway: Gateway, read: Callable[[], list[bytes]]) -> Callable[[], list[bytes]]:
    """``read`` with an empty pseudonym cache: every identifier is keyed again."""

    def cold() -> list[bytes]:
        gateway.pseudonyms.clear()
        return read()

    return cold


def plain_reader(workspace: LargeWorkspace) -> Callable[[], pa.Table]:
    conn = duckdb.connect(":memory:")
    sql = f"SELECT {', '.join(COLUMNS)} FROM read_parquet($path)"
    params = {"path": str(workspace.parquet)}

    def read() -> pa.Table:
        return conn.sql(sql, params=params).to_arrow_table()

    return read


def _check(governed: list[bytes], plain: pa.Table, rows: int) -> None:
    """The two reads return the same shape; the identifiers did go through pseudonyms."""
    table = pa.ipc.open_stream(b"".join(governed)).read_all()
    if table.num_rows != rows or plain.num_rows != rows:
        raise RuntimeError(f"expected {rows} rows, got {table.num_rows} and {plain.num_rows}")
    if table.column_names != list(COLUMNS) or plain.column_names != list(COLUMNS):
        raise RuntimeError(f"unexpected columns {table.column_names} / {plain.column_names}")
    first = table.column("identifier")[0].as_py()
    if not first.startswith("p1_") or first == plain.column("identifier")[0].as_py():
        raise RuntimeError("the governed read returned raw identifiers")


def sizes() -> tuple[int, ...]:
    """Rows per measured file: beyond the in-memory file cache from 4M rows on."""
    return QUICK_SIZES if common.quick() else FULL_SIZES


def without_file_cache(gateway: Gateway) -> None:
    """Let the gateway's local connectors cache no file, as for files beyond the cache."""
    for connector in gateway.connectors.values():
        cache = getattr(connector, "file_cache", None)
        if cache is not None:
            cache.max_file_bytes = 0


def first_read(workspace: LargeWorkspace) -> Callable[[], list[bytes]]:
    """A read by a gateway opened just before it: no file, pseudonym or decision cached
    (opening it is not timed)."""
    opened: list[Gateway] = []

    def prepare() -> None:
        opened.append(open_gateway(workspace))

    def read() -> list[bytes]:
        gateway = opened.pop()
        try:
            return governed_reader(gateway, workspace)()
        finally:
            gateway.close()

    read.prepare = prepare  # type: ignore[attr-defined]
    return read


def _timed_first_reads(workspace: LargeWorkspace, repeats: int) -> common.Timing:
    timing = common.Timing()
    reader = first_read(workspace)
    for _ in range(repeats):
        reader.prepare()  # type: ignore[attr-defined]
        started, cpu = time.perf_counter(), time.process_time()
        reader()
        timing.runs.append(time.perf_counter() - started)
        timing.cpu_runs.append(time.process_time() - cpu)
    return timing


def measure(rows: int) -> dict[str, common.Timing]:
    workspace = common.large_workspace(f"governed_read_{rows}", rows=rows)
    plain = plain_reader(workspace)
    gateway = open_gateway(workspace)
    uncached = open_gateway(workspace)
    without_file_cache(uncached)
    try:
        governed = governed_reader(gateway, workspace)
        _check(governed(), plain(), workspace.rows)  # doubles as the warm-up
        timings = common.interleaved(
            {
                "warm": governed,
                "warm, no file cache": governed_reader(uncached, workspace),
                "plain": plain,
            },
            repeats=REPEATS,
            warmup=1,
        )
    finally:
        gateway.close()
        uncached.close()
    timings["first read"] = _timed_first_reads(workspace, REPEATS)
    return timings


def run() -> list[Result]:
    results: list[Result] = []
    measured: dict[int, dict[str, common.Timing]] = {}
    for rows in sizes():
        began = time.perf_counter()
        timings = measure(rows)
        measured[rows] = timings
        print(f"  {rows:,} rows measured in {time.perf_counter() - began:.0f}s", flush=True)
        plain = timings["plain"].median
        label = _label(rows)
        for case, target, row in (
            ("warm", WARM_TARGET, "local_read"),
            ("warm, no file cache", WARM_TARGET, "local_read"),
            ("first read", COLD_TARGET, "first_read" if rows == max(sizes()) else "local_read"),
        ):
            timing = timings[case]
            results.append(
                Result(
                    f"governed_read.{label}.{case.replace(', ', '.').replace(' ', '_')}",
                    timing.median,
                    "s",
                    baseline=plain,
                    target=target,
                    row=row,
                    note=(
                        f"median of {REPEATS}; {rows / timing.median / 1e6:.2f}M rows/s; "
                        f"{_cpu(timing)} against the baseline's {_cpu(timings['plain'])}; "
                        "baseline = duckdb read_parquet -> Arrow table, same 4 columns"
                    ),
                )
            )
    plot(measured)
    return results


def _cpu(timing: common.Timing) -> str:
    cpu = timing.cpu_median
    return "no CPU time" if cpu is None else f"CPU {cpu:.3f} s a run (median)"


def _label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1000}k"


def plot(measured: dict[int, dict[str, common.Timing]]) -> None:
    """Cost against rows, as a PNG under docs/images/ (matplotlib, the dev extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (no plot: matplotlib is not installed)")
        return
    sizes_ = sorted(measured)
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for case in ("plain", "warm", "warm, no file cache", "first read"):
        axes.plot(
            [n / 1e6 for n in sizes_],
            [measured[n][case].median for n in sizes_],
            marker="o",
            label="plain DuckDB -> Arrow" if case == "plain" else f"governed, {case}",
        )
    axes.set_xlabel("rows (millions)")
    axes.set_ylabel("seconds (median)")
    axes.set_title("Governed read of local Parquet vs a plain read")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    common.IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    path = common.IMAGES_DIR / f"governed_read_cost{'_quick' if common.quick() else ''}.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    print(f"  plot: {path.relative_to(common.REPO_ROOT)}")


# (module, owner or "", function, stage): disjoint leaves, "of which" details indented.
_STAGES = (
    ("gateway.access.principals", "", "authenticate", "auth lookup"),
    ("gateway.access.decisions", "Decider", "decide", "decision"),
    ("gateway.auditing.log", "AuditLog", "append", "audit appends"),
    ("gateway.access.budgets", "", "limits_for", "row budget (SQL)"),
    ("gateway.access.budgets", "", "reserve_rows", "row budget (SQL)"),
    ("gateway.access.budgets", "", "settle_rows", "row budget (SQL)"),
    ("connectors.local", "LocalConnector", "scan", "scan (DuckDB -> Arrow batches)"),
    ("gateway.transforms.profile", "BatchTransformer", "__call__", "transform"),
    ("gateway.transforms.pseudonyms", "", "pseudonymize", "  of which: pseudonymize"),
    ("gateway.transforms.pseudonyms", "", "keyed", "    of which: keying (HMAC)"),
    ("gateway.read.encoders", "ArrowEncoder", "batch", "encode (Arrow IPC)"),
    ("gateway.read.encoders", "ArrowEncoder", "finish", "encode (Arrow IPC)"),
)


def profile() -> None:
    """Where one governed 1M-row Arrow read spends its time, warm and cold."""
    workspace = common.large_workspace()
    gateway = open_gateway(workspace)
    try:
        read = governed_reader(gateway, workspace)
        read()
        _profile_case(read, "warm pseudonym cache")
        _profile_case(cold_reader(gateway, read), "empty pseudonym cache")
    finally:
        gateway.close()


def _profile_case(read: Callable[[], list[bytes]], label: str) -> None:
    timer = StageTimer()
    repeats = 3
    try:
        common.wrap_stages(timer, _STAGES)
        started = time.perf_counter()
        for _ in range(repeats):
            read()
        total = time.perf_counter() - started
        timer.restore()
        profiler = cProfile.Profile()
        profiler.enable()
        read()
        profiler.disable()
    finally:
        timer.restore()
    common.section(f"governed_read, {label}: one 1M-row Arrow read, mean of {repeats}")
    stages = [
        (stage, timer.seconds[stage], f"{timer.calls[stage] / repeats:g} calls/read")
        for stage in timer.stages
    ]
    accounted = sum(seconds for label, seconds, _ in stages if not label.startswith(" "))
    stages.append(("other (digest, slicing, planning, glue)", total - accounted, ""))
    stages.append(("total", total, ""))
    common.print_stages(stages, per=repeats, total_s=total)
    common.print_cprofile(profiler, "cProfile, one read, top functions by own time:", limit=15)
