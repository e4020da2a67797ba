"""What the Spark Connect store does beyond the contract suite: its settings, the token,
failures of the server, streaming, logs that never quote a filter value, and
``kiteline check`` through it. Everything runs against one real Spark Connect server."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from connectors.base import (
    ConnectorError,
    DatasetNotFound,
    Filter,
    OrderBy,
    Scan,
    StoreUnavailable,
    Table,
)
from connectors.spark import SparkConnector
from gateway.config import SparkStore

pytestmark = pytest.mark.slow

ROWS = 200_000


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spark-data")
    table = pa.table(
        {
            "id": pa.array(range(ROWS), pa.int64()),
            "kind": pa.array([("a", "b", "c", "d")[i % 4] for i in range(ROWS)]),
        }
    )
    pq.write_table(table, root / "many.parquet", row_group_size=20_000)
    pq.write_table(table.slice(0, 10), root / "few.parquet")
    return root


def connector_for(server: Any, data_dir: Path, **overrides: Any) -> SparkConnector:
    settings: dict[str, Any] = {"token": server.token, "tls": False, "root": str(data_dir)}
    settings.update(overrides)
    return SparkConnector(settings.pop("url", server.url), **settings)


@pytest.fixture
def connector(spark_server: Any, data_dir: Path) -> Any:
    instance = connector_for(spark_server, data_dir)
    yield instance
    instance.close()


# --- settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("http://spark:15002", {}, "sc://host"),
        ("sc://spark:15002/;token=abc", {}, "without parameters"),
        ("sc://spark.example:15002", {"token": "t", "tls": False}, "only sent over TLS"),
        ("sc://spark:15002", {"ca_bundle": b"pem", "tls": False}, "needs tls"),
        ("sc://spark:15002", {"timeout_s": 0}, "positive"),
    ],
)
def test_settings_are_refused_when_unsafe_or_malformed(
    url: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConnectorError, match=message):
        SparkConnector(url, **options)


def test_the_configured_token_must_be_a_reference() -> None:
    with pytest.raises(ValidationError, match="reference"):
        SparkStore(kind="spark", url="sc://spark:15002", token="s3cret")
    assert SparkStore(kind="spark", url="sc://spark:15002", token="env:SPARK_TOKEN").tls


def test_every_spark_setting_is_documented() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "spark.md").read_text()
    for name in SparkStore.model_fields:
        assert f"`{name}`" in page, f"stores.*.{name} is not in docs/spark.md"


# --- the server ------------------------------------------------------------------------


def test_a_wrong_token_is_refused(spark_server: Any, data_dir: Path) -> None:
    wrong = connector_for(spark_server, data_dir, token="not-the-token")
    try:
        with pytest.raises(StoreUnavailable, match="refused") as caught:
            wrong.schema(Table("few.parquet"))
        assert "not-the-token" not in str(caught.value)
    finally:
        wrong.close()


def test_no_token_is_refused(spark_server: Any, data_dir: Path) -> None:
    anonymous = connector_for(spark_server, data_dir, token=None)
    try:
        with pytest.raises(StoreUnavailable):
            anonymous.schema(Table("few.parquet"))
    finally:
        anonymous.close()


def test_an_unreachable_server_is_unavailable_within_seconds(
    spark_server: Any, data_dir: Path, unused_port: int
) -> None:
    started = time.monotonic()
    gone = connector_for(spark_server, data_dir, url=f"sc://127.0.0.1:{unused_port}")
    try:
        with pytest.raises(StoreUnavailable, match="unavailable"):
            list(gone.scan(Table("few.parquet"), Scan(columns=("id",))))
    finally:
        gone.close()
    assert time.monotonic() - started < 20


def test_a_timeout_interrupts_the_call_and_is_unavailable(
    spark_server: Any, data_dir: Path
) -> None:
    hasty = connector_for(spark_server, data_dir, timeout_s=0.001)
    try:
        # The schema look-up meets its gRPC deadline, or the query its interruption.
        with pytest.raises(StoreUnavailable, match="timed out|did not answer within"):
            scan = Scan(columns=("id",), order_by=(OrderBy("kind"),), limit=5)
            list(hasty.scan(Table("many.parquet"), scan))
    finally:
        hasty.close()


def test_a_catalog_table_that_does_not_exist_is_not_found(connector: SparkConnector) -> None:
    with pytest.raises(DatasetNotFound):
        connector.schema(Table("default.no_such_table", format="table"))


# --- streaming -------------------------------------------------------------------------


def test_a_large_answer_arrives_in_many_batches(connector: SparkConnector) -> None:
    seen = 0
    batches = 0
    for batch in connector.scan(Table("many.parquet"), Scan(columns=("id",)), batch_size=8_192):
        assert batch.num_rows <= 8_192
        seen += batch.num_rows
        batches += 1
    assert seen == ROWS
    assert batches >= ROWS // 8_192


def test_a_stream_left_early_lets_the_connector_go_on(connector: SparkConnector) -> None:
    stream = connector.scan(Table("many.parquet"), Scan(columns=("id",)), batch_size=1_000)
    assert next(stream).num_rows == 1_000
    stream.close()  # a client that went away: the server operation is interrupted
    again = Scan(columns=("id",), filters=(Filter("kind", "=", "d"),), limit=3)
    assert pa.Table.from_batches(
        list(connector.scan(Table("many.parquet"), again))
    ).to_pydict() == {"id": [3, 7, 11]}


# --- logs ------------------------------------------------------------------------------


def test_a_mistyped_filter_value_is_refused_without_quoting_it(
    connector: SparkConnector, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    secret = "Jane Q. Patient"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConnectorError) as caught:
        list(
            connector.scan(
                Table("few.parquet"), Scan(columns=("id",), filters=(Filter("id", "=", secret),))
            )
        )
    assert secret not in str(caught.value)
    assert secret not in caplog.text
    out, err = capfd.readouterr()
    assert secret not in out + err


def test_a_failing_query_logs_no_server_text(
    connector: SparkConnector, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # pyspark prints the server's message of a failed query on its own loggers; the
    # message names the path here, and it could quote a filter literal elsewhere.
    marker = "kiteline-marker-path"
    with pytest.raises(DatasetNotFound):
        connector.schema(Table(str(tmp_path / marker / "x.parquet")))
    out, err = capfd.readouterr()
    assert marker not in out + err


# --- kiteline check --------------------------------------------------------------------


def test_check_reads_the_schema_through_spark(
    spark_server: Any, data_dir: Path, tmp_path: Path
) -> None:
    from gateway.config import Config
    from gateway.read.catalog_check import check_stores

    (tmp_path / "spark.token").write_text(spark_server.token + "\n")
    config = Config.model_validate(
        {
            "stores": {
                "lake": {
                    "kind": "spark",
                    "url": spark_server.url,
                    "token": "file:spark.token",
                    "tls": False,
                    "root": str(data_dir),
                }
            },
            "modules": {"m": {"custodians": ["a", "b"]}},
            "datasets": {
                "events": {
                    "module": "m",
                    "store": "lake",
                    "location": "few.parquet",
                    "columns": {"id": "identifier", "gone": "public"},
                },
                "lost": {"module": "m", "store": "lake", "location": "nope.parquet", "columns": {}},
            },
            "base_dir": tmp_path,
        }
    )
    problems = check_stores(config)
    assert "datasets.events.columns: store column 'kind' is not classified" in problems[0]
    assert any("datasets.events.columns.gone: classified column is missing" in p for p in problems)
    assert any(p.startswith("datasets.lost.location: no data at") for p in problems)
