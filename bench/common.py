"""Shared benchmark helpers, one import for every bench module: results and targets
(``bench.results``), timing, a kiteline workspace with a large dataset
(``bench.workspaces``), server subprocesses (``bench.servers``), and per-stage timers
for profiles (``bench.stages``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.paths import BENCH_DIR, DATA_DIR, IMAGES_DIR, REPO_ROOT
from bench.results import (
    ISSUE_TARGETS,
    Result,
    Target,
    fmt_number,
    markdown_targets,
    print_table,
    print_targets,
    quick,
    run_and_print,
    section,
)
from bench.servers import LOOPBACK, Served, free_port, served, stop
from bench.stages import StageTimer, print_cprofile, print_stages, wrap_stages
from bench.workspaces import (
    LARGE_CONFIG,
    LargeWorkspace,
    large_workspace,
    lift_row_budgets,
    state_fingerprint,
    write_events,
)

# -- timing ----------------------------------------------------------------------------


@dataclass
class Timing:
    runs: list[float] = field(default_factory=list)
    # This process's processor seconds per run (all its threads): beside the wall clock,
    # it shows how much of a run overlapped on more than one core.
    cpu_runs: list[float] = field(default_factory=list)

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu_runs) if self.cpu_runs else None

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
            started, cpu = time.perf_counter(), time.process_time()
            fn()
            timings[name].runs.append(time.perf_counter() - started)
            timings[name].cpu_runs.append(time.process_time() - cpu)
    return timings


__all__ = [
    "BENCH_DIR",
    "DATA_DIR",
    "IMAGES_DIR",
    "ISSUE_TARGETS",
    "LARGE_CONFIG",
    "LOOPBACK",
    "REPO_ROOT",
    "LargeWorkspace",
    "Result",
    "Served",
    "StageTimer",
    "Target",
    "Timing",
    "fmt_number",
    "free_port",
    "interleaved",
    "large_workspace",
    "lift_row_budgets",
    "markdown_targets",
    "print_cprofile",
    "print_stages",
    "print_table",
    "print_targets",
    "quick",
    "run_and_print",
    "section",
    "served",
    "state_fingerprint",
    "stop",
    "wrap_stages",
    "write_events",
]
