"""Benchmark results, their targets and the tables that show them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

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


def run_and_print(run: Callable[[], list[Result]]) -> int:
    """A bench module's ``main``: run it, print its table and how long it took."""
    started = time.perf_counter()
    results = run()
    print()
    print_table(results)
    print(f"\n({time.perf_counter() - started:.0f}s)")
    return 0


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
