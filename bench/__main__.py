"""``python -m bench [name ...]``: run the benchmarks and print one table.

Without names, every ``bench/<name>.py`` that defines ``run()`` runs, in name order.
``--profile`` also prints each chosen benchmark's ``profile()`` breakdown, and
``--list`` names the benchmarks. Exits 0 whether or not targets are met (the table says
so); 1 only when a benchmark could not be measured; 2 for an unknown name.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import sys
import time
import traceback
from typing import Any

from bench import common

# Scripts in bench/ that are not ``run() -> list[Result]`` benchmarks (they may have
# their own entry points), and the helpers.
NOT_BENCHMARKS = frozenset({"__init__", "__main__", "common", "scrub_corpus"})


def _defines(path: str, function: str) -> bool:
    """Whether a module defines a top-level ``function``, read without importing it."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=path)
    return any(isinstance(n, ast.FunctionDef) and n.name == function for n in tree.body)


def discover() -> list[str]:
    names = []
    for path in sorted(common.BENCH_DIR.glob("*.py")):
        if path.stem not in NOT_BENCHMARKS and _defines(str(path), "run"):
            names.append(path.stem)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--profile", action="store_true", help="also print where the time goes, per benchmark"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes only (a few minutes in all)"
    )
    parser.add_argument(
        "--markdown", metavar="FILE", help="also write the target rows as a Markdown table"
    )
    args = parser.parse_args(argv)
    if args.quick:
        os.environ["KITELINE_BENCH_QUICK"] = "1"
    available = discover()
    if args.list:
        print("\n".join(available))
        return 0
    unknown = [n for n in args.names if n not in available]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}")
        return 2
    chosen = args.names or available

    results: list[Any] = []  # Result, or a module's own result type
    failed: list[str] = []
    started = time.perf_counter()
    for name in chosen:
        module = importlib.import_module(f"bench.{name}")
        common.section(name)
        began = time.perf_counter()
        try:
            results.extend(module.run())
        except Exception:
            traceback.print_exc()
            failed.append(name)
        if args.profile and hasattr(module, "profile"):
            try:
                module.profile()
            except Exception:
                traceback.print_exc()
                print(f"(the {name} profile failed; its measurements stand)")
        print(f"({name}: {time.perf_counter() - began:.1f}s)", flush=True)

    common.section(f"results ({time.perf_counter() - started:.0f}s)")
    common.print_table(results)
    common.section("targets")
    common.print_targets(results)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as handle:
            handle.write(common.markdown_targets(results))
    if failed:
        print(f"\ncould not measure: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
