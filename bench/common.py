"""Shared benchmark helpers: results and targets, timing, the results table, a kiteline
workspace with a large dataset, server subprocesses, and per-stage timers for profiles."""

from __future__ import annotations

import contextlib
import cProfile
import hashlib
import inspect
import io
import json
import os
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import sysconfig
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / ".data"
IMAGES_DIR = REPO_ROOT / "docs" / "images"


# -- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A target from an issue: ``on`` (the value or the ratio) ``op`` ``bound``."""

    on: Literal["value", "ratio"]
    op: Literal["<=", ">="]
    bound: float
    unit: str = ""

    def describe(self) -> str:
        what = "ratio" if self.on == "ratio" else "value"
        unit = f" {self.unit}" if self.unit else ""
        return f"{what} {self.op} {fmt_number(self.bound)}{unit}"

    def met_by(self, result: Result) -> bool | None:
        measured = result.ratio if self.on == "ratio" else result.value
        if measured is None:
            return None
        return measured <= self.bound if self.op == "<=" else measured >= self.bound


@dataclass(frozen=True)
class Result:
    """One measured number, its in-run baseline, and ``ratio = value / baseline``."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    target: Target | None = None
    note: str = ""
    errors: int = 0  # failed operations during the measurement: the target is not met
    row: str = ""  # the key of the ISSUE_TARGETS row this measures, if any

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return False if self.errors else self.target.met_by(self)


def fmt_number(value: float | None) -> str:
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _cells(result: Any) -> tuple[str, ...]:
    """Table cells of a ``Result``, or of any object with ``name``, ``value`` and
    ``unit`` (and optionally ``baseline``, ``ratio``, ``target``, ``met``), such as a
    benchmark module's own result class; 0 or None reads as "none"."""
    baseline = getattr(result, "baseline", None) or None
    ratio = getattr(result, "ratio", None) or None
    target = getattr(result, "target", None)
    met = getattr(result, "met", None)
    return (
        str(result.name),
        fmt_number(result.value),
        str(result.unit),
        fmt_number(baseline),
        "-" if ratio is None else f"{ratio:.2f}x",
        target.describe() if isinstance(target, Target) else str(target or "-"),
        {True: "yes", False: "NO"}.get(met, "-") if isinstance(met, bool | None) else str(met),
    )


def print_table(results: list[Any]) -> None:
    header = ("name", "value", "unit", "baseline", "ratio", "target", "met")
    rows = [_cells(r) for r in results]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    right = {1, 3, 4}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
    notes = [(r.name, r.note) for r in results if getattr(r, "note", "")]
    if notes:
        print()
        for name, note in notes:
            print(f"  {name}: {note}")


# -- the performance targets ---------------------------------------------------------

# The targets of the performance work, one row each: (key, measurement, baseline,
# target). Results name the row they measure; `print_targets` shows every row, also
# those no benchmark measures yet.
ISSUE_TARGETS: tuple[tuple[str, str, str, str], ...] = (
    (
        "local_read",
        "governed read, local Parquet, 1M/4M/10M rows, warm and cold",
        "plain DuckDB -> Arrow, same columns",
        "<= 1.5x warm, <= 2x cold",
    ),
    ("s3_read", "governed read from S3, 4 columns", "pyarrow dataset read, same server", "<= 1.5x"),
    ("pg_read", "governed read from PostgreSQL, 1M rows", "fastest plain Arrow read", "<= 1.5x"),
    (
        "first_read",
        "a recipient's first (cold) governed read, 100k distinct identifiers",
        "plain DuckDB read",
        "<= 2x",
    ),
    (
        "http_100",
        "100-row governed JSON query over loopback, 1 worker",
        "bare FastAPI + orjson, same rows",
        ">= 50% of its rate",
    ),
    (
        "json_output",
        "JSON / CSV output of governed rows",
        "Arrow IPC output of the same rows",
        "JSON >= 2M rows/s",
    ),
    (
        "decision",
        "uncached decision p50 / p99",
        "OPA's published 207-312 us median",
        "<= 150 us / <= 500 us",
    ),
    (
        "grant_change",
        "decision state after a grant change, 100k grants",
        "-",
        "incremental, <= 50 ms, reads never wait",
    ),
    (
        "audit_append",
        "audit appends, SQLite / PostgreSQL",
        "-",
        ">= 30k/s / >= 10k/s, p50 added <= 0.3 ms",
    ),
    ("audit_verify", "audit verify, 1M events", "SHA-256 of the same bytes", ">= 300k events/s"),
    (
        "flight",
        "bulk transfer of 10M governed rows (Arrow Flight)",
        "Arrow IPC file over loopback",
        "<= 1.3x",
    ),
    ("rss", "peak gateway RSS, governed read of 1M vs 16M rows", "-", "flat"),
)


def quick() -> bool:
    """Whether the benchmarks run at their small sizes (``python -m bench --quick``)."""
    return os.environ.get("KITELINE_BENCH_QUICK", "") not in ("", "0")


def print_targets(results: list[Any]) -> None:
    """Every target row, with the results that measure it (or that none does)."""
    header = ("target row", "measured by", "value", "baseline", "ratio", "target", "met")
    rows: list[tuple[str, ...]] = []
    for key, measurement, baseline, target in ISSUE_TARGETS:
        mine = [r for r in results if getattr(r, "row", "") == key]
        if not mine:
            rows.append(
                (measurement, "not measured by make bench", "-", baseline, "-", target, "-")
            )
            continue
        for result in mine:
            cells = _cells(result)
            rows.append(
                (
                    measurement,
                    cells[0],
                    f"{cells[1]} {cells[2]}",
                    cells[3],
                    cells[4],
                    cells[5],
                    cells[6],
                )
            )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())


def markdown_targets(results: list[Any]) -> str:
    """The target rows as a Markdown table (for docs/performance.md)."""
    lines = [
        "| measurement | measured by | value | baseline | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, measurement, baseline, target in ISSUE_TARGETS:
        mine = [r for r in results if getattr(r, "row", "") == key]
        if not mine:
            lines.append(
                f"| {measurement} | not measured yet | - | {baseline} | - | {target} | - |"
            )
        for result in mine:
            cells = _cells(result)
            lines.append(
                f"| {measurement} | `{cells[0]}` | {cells[1]} {cells[2]} | {cells[3]} | "
                f"{cells[4]} | {cells[5]} | {cells[6]} |"
            )
    return "\n".join(lines) + "\n"


def section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


# -- timing ----------------------------------------------------------------------------


@dataclass
class Timing:
    runs: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def interleaved(
    subjects: dict[str, Callable[[], object]], *, repeats: int, warmup: int = 1
) -> dict[str, Timing]:
    """Time each subject ``repeats`` times, alternating between them so that drift in
    the machine's state (caches, other processes) hits them alike."""
    for _ in range(warmup):
        for fn in subjects.values():
            fn()
    timings = {name: Timing() for name in subjects}
    for _ in range(repeats):
        for name, fn in subjects.items():
            started = time.perf_counter()
            fn()
            timings[name].runs.append(time.perf_counter() - started)
    return timings


# -- a workspace with a large dataset --------------------------------------------------

LARGE_LAYOUT = 2  # bump when the generated data changes shape

LARGE_CONFIG = """\
# kiteline configuration for the benchmarks (generated by bench/common.py).
gateway:
  listen: 127.0.0.1:8788
  state_url: sqlite:///state.db
  key_dir: keys
  master_key: file:keys/master.key
  max_rows_per_request: {max_rows}

policy:
  engine: embedded

stores:
  bench:
    kind: local
    root: {data_root}

modules:
  events:
    description: Synthetic events for the benchmarks.
    custodians: [ben, cyd]
    approvals_required: 1

datasets:
  events:
    module: events
    store: bench
    location: {location}
    description: One row per event; {rows} rows, {distinct} distinct identifiers.
    columns:
      row_id: public
      identifier: {{class: identifier, domain: subject}}
      event_date: {{class: quasi_identifier, generalize: year}}
      category: public
      amount: sensitive
"""

# The benchmarks measure reads, not the egress budgets that would cut a long run short.
NO_ROW_BUDGETS = """\

budgets:
  rows_per_day: null
  rows_total: null
"""


def lift_row_budgets(config_text: str) -> str:
    """``config_text`` with the default row budgets lifted, where the config has them."""
    from gateway.config import Config

    if "budgets" not in Config.model_fields or "\nbudgets:" in config_text:
        return config_text
    return config_text.rstrip("\n") + "\n" + NO_ROW_BUDGETS


CATEGORIES = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")


def state_fingerprint() -> str:
    """Changes whenever the state database's schema may have: a state built under an
    older schema is rebuilt rather than reused (migrations may be edited in place)."""
    import gateway

    package = Path(gateway.__file__).parent / "state"
    digest = hashlib.sha256()
    for path in sorted(package.glob("migrations/versions/*.py")) + [package / "models.py"]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class LargeWorkspace:
    root: Path
    config_path: Path
    parquet: Path
    dataset: str
    principal: str
    token: str
    rows: int


def write_events(path: Path, *, rows: int, distinct: int, seed: int) -> None:
    """``rows`` seeded rows; ``identifier`` takes exactly ``distinct`` values."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    ids = pa.array([f"U{i:07d}" for i in range(distinct)], pa.string())
    picks = np.concatenate(
        [np.arange(distinct), rng.integers(0, distinct, rows - distinct)]
    ).astype(np.int64)
    rng.shuffle(picks)
    days = (rng.integers(0, 3650, rows) + 16_000).astype(np.int32)  # 2013-10 .. 2023-09
    table = pa.table(
        {
            "row_id": pa.array(np.arange(rows, dtype=np.int64)),
            "identifier": ids.take(pa.array(picks)),
            "event_date": pa.array(days).view(pa.date32()),
            "category": pa.array(CATEGORIES, pa.string()).take(
                pa.array(rng.integers(0, len(CATEGORIES), rows))
            ),
            "amount": pa.array(np.round(rng.gamma(2.0, 50.0, rows), 2)),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    pq.write_table(table, partial, row_group_size=100_000)
    partial.rename(path)


def large_workspace(
    name: str = "governed_read", *, rows: int = 1_000_000, distinct: int = 100_000, seed: int = 7
) -> LargeWorkspace:
    """A kiteline workspace under ``bench/.data/<name>``: config, master key, migrated
    state, an employee ``ada`` with an API key and an active pseudonymized grant whose
    row cap covers the whole dataset. The data file is generated once per recipe under
    ``bench/.data/events/``; the (cheap) workspace is rebuilt when its recipe or the
    state schema changes."""
    data_dir = DATA_DIR / "events"
    parquet = data_dir / f"events-v{LARGE_LAYOUT}-{rows}-{distinct}-{seed}.parquet"
    if not parquet.exists():
        print(f"generating {parquet.relative_to(REPO_ROOT)} ({rows:,} rows) ...", flush=True)
        write_events(parquet, rows=rows, distinct=distinct, seed=seed)
    root = DATA_DIR / name
    config_text = lift_row_budgets(
        LARGE_CONFIG.format(
            max_rows=rows,
            rows=rows,
            distinct=distinct,
            data_root=os.path.relpath(data_dir, root),
            location=parquet.name,
        )
    )
    recipe = {
        "parquet": parquet.name,
        "config": hashlib.sha256(config_text.encode()).hexdigest()[:16],
        "state": state_fingerprint(),
    }
    manifest = root / "workspace.json"
    if manifest.exists():
        stored = json.loads(manifest.read_text())
        if stored.get("recipe") == recipe:
            return _large(root, parquet, stored["token"], rows)

    from gateway.access.grants import add_grant
    from gateway.access.keyring import create_master_key, write_secret_file
    from gateway.access.principals import add_principal, issue_key
    from gateway.config import load_config
    from gateway.state.database import create_state_engine, migrate

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "kiteline.yaml").write_text(config_text, encoding="utf-8")
    create_master_key(root / "keys/master.key")
    config = load_config(root / "kiteline.yaml")
    engine = create_state_engine(config.state_url)
    try:
        migrate(engine)
        add_principal(engine, name="ada", kind="employee", department="research")
        token = issue_key(engine, "ada")[1]
        add_grant(
            engine,
            config,
            subject_type="principal",
            subject="ada",
            dataset="events",
            profile="pseudonymized",
            days=90,
            approvals=1,
            row_cap=rows,
            created_by="bench",
        )
    finally:
        engine.dispose()
    write_secret_file(manifest, json.dumps({"recipe": recipe, "token": token}).encode())
    return _large(root, parquet, token, rows)


def _large(root: Path, parquet: Path, token: str, rows: int) -> LargeWorkspace:
    return LargeWorkspace(
        root=root,
        config_path=root / "kiteline.yaml",
        parquet=parquet,
        dataset="events",
        principal="ada",
        token=token,
        rows=rows,
    )


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
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


# -- per-stage timers (for profiles) ---------------------------------------------------


class StageTimer:
    """Wall-clock time spent inside chosen functions, by stage name.

    ``wrap`` replaces an attribute (a function, method, classmethod or generator
    function) with a timing wrapper until ``restore``; stages may nest, and each total
    is inclusive. This is for profiling only and never touches files."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.stages: list[str] = []  # in the order they were wrapped
        self._patches: list[tuple[Any, str, Any, bool]] = []

    def _add(self, stage: str, seconds: float, *, call: bool = False) -> None:
        self.seconds[stage] += seconds
        if call:
            self.calls[stage] += 1

    def wrap(self, owner: Any, attr: str, stage: str) -> None:
        static = inspect.getattr_static(owner, attr)
        own = attr in vars(owner)
        bound = getattr(owner, attr)
        is_class = inspect.isclass(owner)
        raw = static.__func__ if isinstance(static, classmethod | staticmethod) else static
        target: Callable[..., Any] = bound if isinstance(static, classmethod) else raw
        add = self._add

        if inspect.isgeneratorfunction(raw):

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                inner = target(*args, **kwargs)
                add(stage, time.perf_counter() - started, call=True)
                try:
                    while True:
                        started = time.perf_counter()
                        try:
                            item = next(inner)
                        except StopIteration:
                            add(stage, time.perf_counter() - started)
                            return
                        add(stage, time.perf_counter() - started)
                        yield item
                finally:
                    inner.close()

        else:

            def wrapper(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                started = time.perf_counter()
                try:
                    return target(*args, **kwargs)
                finally:
                    add(stage, time.perf_counter() - started, call=True)

        if isinstance(static, classmethod):
            replacement: Any = staticmethod(wrapper)
        elif isinstance(static, staticmethod) or not is_class:
            replacement = staticmethod(wrapper) if is_class else wrapper
        else:
            replacement = wrapper
        setattr(owner, attr, replacement)
        if stage not in self.stages:
            self.stages.append(stage)
        self._patches.append((owner, attr, static, own))

    def restore(self) -> None:
        for owner, attr, static, own in reversed(self._patches):
            if own:
                setattr(owner, attr, static)
            else:
                delattr(owner, attr)
        self._patches.clear()

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def wrap_stages(timer: StageTimer, stages: tuple[tuple[str, str, str, str], ...]) -> None:
    """Wrap each ``(module, owner attribute or "", function, stage)``; a function that
    no longer exists is reported and skipped, so a profile survives refactors."""
    import importlib

    for module_name, owner_name, attr, stage in stages:
        try:
            owner: Any = importlib.import_module(module_name)
        except ImportError:
            owner = None
        if owner is not None and owner_name:
            owner = getattr(owner, owner_name, None)
        if owner is None or not hasattr(owner, attr):
            print(f"  (not timed: {module_name}:{owner_name}.{attr} no longer exists)")
            continue
        timer.wrap(owner, attr, stage)


def print_stages(rows: list[tuple[str, float, str]], *, per: int, total_s: float) -> None:
    """Print ``(label, seconds, comment)`` rows as ms per request and share of total."""
    width = max(len(label) for label, _, _ in rows)
    print(f"  {'stage'.ljust(width)}  {'ms/req':>7}  {'share':>6}")
    for label, seconds, comment in rows:
        share = 100.0 * seconds / total_s if total_s else 0.0
        tail = f"  {comment}" if comment else ""
        print(f"  {label.ljust(width)}  {1000 * seconds / per:7.3f}  {share:5.1f}%{tail}")


def print_cprofile(profiler: cProfile.Profile, title: str, *, limit: int = 20) -> None:
    """The top ``limit`` functions by own time, with shortened paths."""
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(limit)
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("ncalls")), 0)
    prefixes = (
        (sysconfig.get_paths()["purelib"] + "/", ""),
        (sysconfig.get_paths()["stdlib"] + "/", ""),
        (str(REPO_ROOT) + "/", ""),
        (sys.prefix + "/", ""),
    )
    print(f"\n  {title}")
    for line in lines[start:]:
        if line.strip():
            for prefix, replacement in prefixes:
                line = line.replace(prefix, replacement)
            print("  " + line)
