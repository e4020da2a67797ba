"""Per-stage timers and profiles: where the time of one benchmark goes."""

from __future__ import annotations

import cProfile
import inspect
import io
import pstats
import sys
import sysconfig
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench.paths import REPO_ROOT

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
