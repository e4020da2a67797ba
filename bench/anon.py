"""Anonymization benchmarks: pseudonyms, k-anonymity suppression, DP aggregates.

Ratios come from one run on the same machine, each against its own baseline:

* pseudonymizing a 10,000,000-row column (100,000 distinct identifiers) against reading
  the same column from Parquet without a transform (target: >= 10 million rows/s);
* an anonymized read of 1,000,000 rows (generalize, k-anonymity suppression, pseudonyms)
  against the plain read of the same columns (target: within 2x), with the one-off
  class index build reported on its own;
* a DP aggregate (clamped sums, OpenDP noise, thresholded groups) against the same plain
  aggregate in DuckDB.

Run: ``.venv/bin/python bench/anon.py`` (``--rows`` scales the 10M figure down).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.access.keyring import Keyring  # noqa: E402
from gateway.transforms import generalization  # noqa: E402
from gateway.transforms.kanonymity import ClassIndex, QiSpec  # noqa: E402
from gateway.transforms.privacy import (  # noqa: E402
    AggregatePlan,
    Measure,
    Output,
    exact_groups,
    release,
)
from gateway.transforms.pseudonyms import (  # noqa: E402
    PseudonymTable,
    prefix_for,
    pseudonymize,
)


@dataclass
class Result:
    name: str
    value: float
    unit: str
    baseline: float
    ratio: float
    target: str


def best(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_pseudonyms(folder: Path, rows: int) -> list[Result]:
    distinct = pa.array([f"P{i:09d}" for i in range(100_000)])
    indices = pa.array((i * 7919) % 100_000 for i in range(rows))
    pq.write_table(pa.table({"patient_id": distinct.take(indices)}), folder / "ids.parquet")
    keyring = Keyring(bytes(range(32)))
    key = keyring.pseudonym_key("org:bench", "patient", 1)
    prefix = prefix_for(1, keyring.recipient_tag("org:bench", 1))

    def plain() -> pa.Table:
        # Parquet stores the column dictionary-encoded; read it that way in both runs.
        return pq.read_table(
            folder / "ids.parquet", columns=["patient_id"], read_dictionary=["patient_id"]
        )

    def transformed() -> pa.Array:
        column = plain().column(0)
        return pseudonymize(column, key=key, prefix=prefix, as_dictionary=True)

    read = best(plain)
    total = best(transformed)
    transform = max(total - read, 1e-9)
    return [
        Result(
            f"pseudonymize {rows:,} rows (100,000 distinct)",
            transform,
            "s",
            read,
            total / read,
            "<= 1 s for 10M rows (>= 10M rows/s)",
        ),
        Result("pseudonym throughput", rows / transform / 1e6, "M rows/s", 0.0, 0.0, ">= 10"),
    ]


def people(rows: int) -> pa.Table:
    ids = pa.array([f"P{i:09d}" for i in range(rows)])
    days = pa.array(((i * 37) % 25_000 - 20_000 for i in range(rows)), pa.int32())
    births = days.cast(pa.date32())
    return pa.table(
        {
            "patient_id": ids,
            "birth_date": births.cast(pa.date32()),
            "gender": pa.array(["男", "女"] * (rows // 2)),
            "zip": pa.array(f"{(i * 131) % 1000:03d}{i % 1000:03d}" for i in range(rows)),
            "diagnosis": pa.array(["a", "b", "c", "d", "e"] * (rows // 5)),
        }
    )


def bench_kanonymity(folder: Path) -> list[Result]:
    rows = 1_000_000
    pq.write_table(people(rows), folder / "people.parquet", row_group_size=65_536)
    columns = ["patient_id", "birth_date", "gender", "zip", "diagnosis"]
    spec = QiSpec((("birth_date", "band:10"), ("gender", "keep"), ("zip", "prefix:2")), k=5)
    keyring = Keyring(bytes(range(32)))
    key = keyring.pseudonym_key("org:bench", "patient", 1)
    prefix = prefix_for(1, keyring.recipient_tag("org:bench", 1))

    def batches() -> list[pa.RecordBatch]:
        return pq.read_table(folder / "people.parquet", columns=columns).to_batches(65_536)

    started = time.perf_counter()
    index = ClassIndex.build(spec, batches())
    build = time.perf_counter() - started

    def anonymized(with_ids: bool = True) -> int:
        out = 0
        table = PseudonymTable()  # one read's pseudonyms, as a gateway read keeps them
        for batch in batches():
            kept = batch.filter(index.keep(batch))
            ids = kept.column("patient_id")
            arrays = [
                pseudonymize(ids, key=key, prefix=prefix, table=table) if with_ids else ids,
                generalization.generalize(kept.column("birth_date"), "band:10"),
                kept.column("gender"),
                generalization.generalize(kept.column("zip"), "prefix:2"),
                kept.column("diagnosis"),
            ]
            out += len(arrays[0])
        return out

    plain = best(lambda: batches())
    anon = best(anonymized)
    suppression = best(lambda: anonymized(with_ids=False))
    return [
        Result(
            "anonymized read of 1M rows, no identifier column",
            suppression,
            "s",
            plain,
            suppression / plain,
            "<= 2x plain read",
        ),
        Result(
            "k-anonymity class index build, 1M rows (once per data version)",
            build,
            "s",
            plain,
            build / plain,
            "-",
        ),
        Result(
            "anonymized read of 1M rows, 1M distinct ids pseudonymized",
            anon,
            "s",
            plain,
            anon / plain,
            "report (1M HMACs)",
        ),
    ]


def bench_dp(folder: Path) -> list[Result]:
    rows = 1_000_000
    cities = pa.array(["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京"])
    table = pa.table(
        {
            "city": cities.take(pa.array(i % 8 for i in range(rows))),
            "value": pa.array(((i * 7919) % 5_000_000 for i in range(rows)), pa.int64()),
        }
    )
    pq.write_table(table, folder / "agg.parquet")
    plan = AggregatePlan(
        (("city", None),),
        (Measure("sum", "value", (0.0, 5e6)),),
        (Output("n", "count", None), Output("avg", "avg", "value")),
        10,
    )

    def ours() -> pa.Table:
        batches = pq.read_table(folder / "agg.parquet").to_batches(65_536)
        exact = exact_groups(plan, batches)
        return release(plan, exact, epsilon=1.0, delta=1e-6, group_types=[pa.string()]).table

    path = str(folder / "agg.parquet")

    def plain() -> object:
        return duckdb.sql(
            f"SELECT city, count(*), avg(least(greatest(value, 0), 5000000)) FROM "
            f"read_parquet('{path}') GROUP BY city"
        ).fetchall()

    mine, theirs = best(ours), best(plain)
    return [
        Result(
            "DP aggregate, 1M rows, 8 groups",
            mine,
            "s",
            theirs,
            mine / theirs,
            "report (plain DuckDB is the baseline)",
        )
    ]


def run(rows: int = 10_000_000) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        return bench_pseudonyms(folder, rows) + bench_kanonymity(folder) + bench_dp(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    print(f"{'benchmark':<62}{'value':>10} {'unit':<9}{'baseline':>10}{'ratio':>8}  target")
    for r in run(args.rows):
        print(
            f"{r.name:<62}{r.value:>10.3f} {r.unit:<9}{r.baseline:>10.3f}{r.ratio:>8.2f}  "
            f"{r.target}"
        )


if __name__ == "__main__":
    main()
