"""Where the benchmarks keep their data and their charts."""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / ".data"
IMAGES_DIR = REPO_ROOT / "docs" / "images"
