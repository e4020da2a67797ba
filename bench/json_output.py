"""JSON and CSV output of governed rows, against Arrow IPC output of the same rows.

Subject: the response encoders (``gateway.read.encoders``) writing the record batches a
governed read hands them (a pseudonymized grant over the events dataset: pseudonyms,
years, categories, amounts). The batches are taken from one real ``Gateway.read`` and
then encoded again and again, so the figures are the encoders' own cost, not the
read's; the socket is not included. Baseline: the Arrow IPC encoder over the same
batches. Also measured in the same run: the row-by-row JSON path (row dicts through
orjson) that the column-wise path replaced, so the gain is visible.
"""

from __future__ import annotations

import orjson
import pyarrow as pa

from bench import common
from bench.common import Result, Target
from bench.governed_read import ARROW, COLUMNS, governed_reader, open_gateway
from gateway.read import encoders
from gateway.read.encoders import CSV, JSON, encoder_for

REPEATS = 3
JSON_TARGET = Target("value", ">=", 2.0, "Mrows/s")


def governed_batches(rows: int) -> pa.Table:
    workspace = common.large_workspace(f"governed_read_{rows}", rows=rows)
    gateway = open_gateway(workspace)
    try:
        chunks = governed_reader(gateway, workspace)()
    finally:
        gateway.close()
    return pa.ipc.open_stream(b"".join(chunks)).read_all()


def _encode(media_type: str, table: pa.Table) -> int:
    encoder = encoder_for(media_type, table.schema, {"dataset": "events"})
    size = len(encoder.start())
    for batch in table.to_batches():
        size += len(encoder.batch(batch))
    return size + len(encoder.finish(None))


def _row_by_row_json(table: pa.Table) -> int:
    size = 0
    for batch in table.to_batches():
        columns = [column.to_pylist() for column in batch.columns]
        dicts = encoders.row_builder(tuple(batch.schema.names))(columns)
        size += len(orjson.dumps(dicts, default=encoders._json_default))
    return size


def run() -> list[Result]:
    rows = 250_000 if common.quick() else 1_000_000
    table = governed_batches(rows)
    if table.column_names != list(COLUMNS) or table.num_rows != rows:
        raise RuntimeError(f"unexpected governed rows: {table.shape} {table.column_names}")
    timings = common.interleaved(
        {
            "json": lambda: _encode(JSON, table),
            "json, row by row": lambda: _row_by_row_json(table),
            "csv": lambda: _encode(CSV, table),
            "arrow": lambda: _encode(ARROW, table),
        },
        repeats=REPEATS,
    )
    arrow_rate = rows / timings["arrow"].median / 1e6
    note = f"{rows:,} governed rows, {len(COLUMNS)} columns, median of {REPEATS}, encoder only"
    return [
        Result(
            f"json_output.json_{rows // 1000}k",
            rows / timings["json"].median / 1e6,
            "Mrows/s",
            baseline=arrow_rate,
            target=JSON_TARGET,
            row="json_output",
            note=note + "; baseline = Arrow IPC encoder",
        ),
        Result(
            f"json_output.json_row_by_row_{rows // 1000}k",
            rows / timings["json, row by row"].median / 1e6,
            "Mrows/s",
            baseline=rows / timings["json"].median / 1e6,
            note="the replaced path (row dicts through orjson); baseline = the column-wise path",
        ),
        Result(
            f"json_output.csv_{rows // 1000}k",
            rows / timings["csv"].median / 1e6,
            "Mrows/s",
            baseline=arrow_rate,
            row="json_output",
        ),
    ]
