"""Response encoders: JSON rows built from columns agree with Arrow's own rows."""

from __future__ import annotations

import datetime as dt

import orjson
import pyarrow as pa
import pytest

from gateway.read.encoders import JSON, SMALL_JSON_ROWS, encoder_for, row_builder

AWKWARD_NAMES = [
    "patient_id",
    'x"); import os; ("',
    "zip",
    "columns",
    "_k0",
    "_v1",
    "lambda",
    "诊断",
    "with space",
    "{}",
    "",
]


@pytest.mark.parametrize("width", [1, 2, len(AWKWARD_NAMES)])
def test_rows_are_dicts_of_the_names_whatever_they_are(width: int) -> None:
    names = tuple(AWKWARD_NAMES[:width])
    columns = [[f"{i}-{row}" for row in range(3)] for i in range(width)]
    expected = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
    assert row_builder(names)(columns) == expected


def test_no_columns_no_rows() -> None:
    assert row_builder(())([]) == []


def test_json_rows_match_arrow_rows() -> None:
    batch = pa.record_batch(
        {
            "id": ["a", None, "c"],
            "born": pa.array([dt.date(1950, 1, 2), None, dt.date(2001, 3, 4)]),
            "n": [1, 2, None],
            'we"ird': ["x", "y", "z"],
        }
    )
    encoder = encoder_for(JSON, batch.schema, {"dataset": "d", "profile": "p"})
    body = encoder.start() + encoder.batch(batch) + encoder.batch(batch) + encoder.finish(None)
    answer = orjson.loads(body)
    arrow_rows = [
        {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in row.items()}
        for row in batch.to_pylist()
    ]
    assert answer["rows"] == arrow_rows * 2
    assert answer["next_cursor"] is None


@pytest.mark.parametrize("rows", [SMALL_JSON_ROWS, SMALL_JSON_ROWS + 1, 3 * SMALL_JSON_ROWS])
def test_json_bodies_are_the_same_bytes_from_either_writer(rows: int) -> None:
    # Small batches are written from row dicts, larger ones column by column: a body
    # must not depend on how a store happened to cut its batches.
    batch = pa.record_batch(
        {
            "id": [f"p{i}" if i % 7 else None for i in range(rows)],
            "note": [f'患者 "{i}"\n' for i in range(rows)],
            "born": pa.array([dt.date(1950, 1, 1) + dt.timedelta(days=i) for i in range(rows)]),
            "score": [i / 3 for i in range(rows)],
        }
    )

    def body(batches: list[pa.RecordBatch]) -> bytes:
        encoder = encoder_for(JSON, batch.schema, {"dataset": "d", "profile": "p"})
        return encoder.start() + b"".join(map(encoder.batch, batches)) + encoder.finish(None)

    whole = body([batch])
    assert whole == body([batch.slice(i, 10) for i in range(0, rows, 10)])
    assert orjson.loads(whole)["rows"][1]["note"] == '患者 "1"\n'
