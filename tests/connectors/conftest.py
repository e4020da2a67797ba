"""Real stores for the connector tests.

* S3: moto's server runs as a subprocess on a free loopback port and speaks the S3
  protocol over HTTP. It is started with IAM enforcement after the first three
  requests, which create the user whose key the tests use, so a wrong secret is
  really refused rather than silently accepted.
* PostgreSQL: ``KITELINE_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
  Tests skip when nothing answers, unless ``KITELINE_REQUIRE_PG=1``, which makes that
  a failure. One uniquely named schema is created per session and dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from gateway.demo.processes import wait_until_listening
from tests.serving import free_port, stop

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BUCKET = "kiteline-test"
EVENT_DAYS = 8
EVENTS_PER_DAY = 20_000


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    return free_port()


# --- S3 --------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    bucket: str


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("moto")
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "server.log"
    # Three unauthenticated requests: create the user, its key and its policy.
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_until_listening(port, process, log_path, name="moto server", within_s=30, poll_s=0.1)
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="kiteline")
        key = iam.create_access_key(UserName="kiteline")["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName="kiteline", PolicyName="s3-all", PolicyDocument=json.dumps(policy)
        )
        iam.close()
        yield S3Server(
            endpoint_url=endpoint,
            access_key_id=key["AccessKeyId"],
            secret_access_key=key["SecretAccessKey"],
            bucket=BUCKET,
        )
    finally:
        stop(process)


def people_table(rows: int = 2_000) -> pa.Table:
    cities = ["Lyon", "Paris", "Oslo", "Kyoto", None]
    start = dt.datetime(2024, 1, 1, 8, 0, 0)
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "name": pa.array([f"person-{i:04d}" for i in range(rows)]),
            "city": pa.array([cities[i % len(cities)] for i in range(rows)]),
            "age": pa.array([None if i % 7 == 0 else 18 + i % 60 for i in range(rows)], pa.int32()),
            "score": pa.array([(i * 37 % 1000) / 10 for i in range(rows)], pa.float64()),
            "balance": pa.array(
                [Decimal(i * 13 % 10_000) / 100 for i in range(rows)], pa.decimal128(12, 2)
            ),
            "born": pa.array(
                [dt.date(1950, 1, 1) + dt.timedelta(days=i * 11) for i in range(rows)]
            ),
            "seen": pa.array(
                [start + dt.timedelta(minutes=i) for i in range(rows)], pa.timestamp("us")
            ),
            "active": pa.array([i % 3 != 0 for i in range(rows)]),
        }
    )


def events_table() -> pa.Table:
    rows = EVENT_DAYS * EVENTS_PER_DAY
    return pa.table(
        {
            "event_id": pa.array(range(rows), pa.int64()),
            "day": pa.array([1 + i // EVENTS_PER_DAY for i in range(rows)], pa.int32()),
            "kind": pa.array([("view", "click", "buy")[i % 3] for i in range(rows)]),
            # Distinct text so that each partition's objects have a real size.
            "payload": pa.array([uuid.UUID(int=i * 7_919).hex * 2 for i in range(rows)]),
        }
    )


@dataclass(frozen=True)
class S3Data:
    people: pa.Table
    events: pa.Table
    people_csv: pa.Table
    parquet_size: int
    events_object_size: int
    events_prefix_size: int
    event_days: int = EVENT_DAYS
    events_per_day: int = EVENTS_PER_DAY


@pytest.fixture(scope="session")
def s3_data(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> S3Data:
    boto3 = pytest.importorskip("boto3")
    root = tmp_path_factory.mktemp("s3data")
    people = people_table()
    pq.write_table(people, root / "people.parquet", row_group_size=250)
    people_csv = people.select(["id", "name", "city", "age", "score"])
    pacsv.write_csv(people_csv, root / "people.csv")
    events = events_table()
    # The same rows as one object, one row group per day, for row-group pruning.
    pq.write_table(events, root / "events.parquet", row_group_size=EVENTS_PER_DAY)
    ds.write_dataset(
        events,
        root / "events",
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("day", pa.int32())]), flavor="hive"),
    )
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=s3_server.access_key_id,
        aws_secret_access_key=s3_server.secret_access_key,
    )
    client.create_bucket(Bucket=s3_server.bucket)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            key = "data/" + path.relative_to(root).as_posix()
            client.put_object(Bucket=s3_server.bucket, Key=key, Body=path.read_bytes())
    client.close()
    # The Hive dataset comes back with the partition key last.
    events = events.select(["event_id", "kind", "payload", "day"])
    return S3Data(
        people=people,
        events=events,
        people_csv=people_csv,
        parquet_size=(root / "people.parquet").stat().st_size,
        events_object_size=(root / "events.parquet").stat().st_size,
        events_prefix_size=sum(p.stat().st_size for p in (root / "events").rglob("*.parquet")),
    )


# --- PostgreSQL ------------------------------------------------------------------------


def _describe(url: str) -> str:
    """Where we tried to connect, without any password that the URL might carry."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:  # a malformed URL is still worth naming without its secret
        return "the configured URL"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


@pytest.fixture(scope="session")
def pg_url() -> str:
    psycopg = pytest.importorskip("psycopg")
    url = os.environ.get("KITELINE_TEST_PG_URL", DEFAULT_PG_URL)
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = f"PostgreSQL not reachable at {_describe(url)} ({type(exc).__name__})"
        if os.environ.get("KITELINE_REQUIRE_PG") == "1":
            pytest.fail(reason + " and KITELINE_REQUIRE_PG=1")
        pytest.skip(reason + "; set KITELINE_TEST_PG_URL or start one")
    return url


PG_ROWS = 3_000


def _people_statements(schema: Any) -> list[Any]:
    """The schema and its ``people`` table: one column of each type the store maps."""
    from psycopg import sql

    return [
        sql.SQL("CREATE SCHEMA {}").format(schema),
        sql.SQL(
            """CREATE TABLE {}.people (
            id integer PRIMARY KEY,
            name text NOT NULL,
            city varchar(20),
            age smallint,
            big bigint,
            score double precision,
            ratio real,
            balance numeric(12, 2),
            loose numeric,
            active boolean,
            born date,
            seen timestamp,
            seen_tz timestamptz,
            uid uuid,
            doc jsonb,
            tags text[]
        )"""
        ).format(schema),
        sql.SQL(
            """INSERT INTO {}.people
        SELECT i,
               'person-' || lpad(i::text, 4, '0'),
               (ARRAY['Lyon', 'Paris', 'Oslo', 'Kyoto', NULL])[i % 5 + 1],
               CASE WHEN i % 7 = 0 THEN NULL ELSE 18 + i % 60 END,
               i::bigint * 1000000000,
               (i * 37 % 1000) / 10.0,
               i / 4.0,
               (i * 13 % 10000) / 100.0,
               i / 3.0,
               i % 3 <> 0,
               DATE '1950-01-01' + i * 11,
               TIMESTAMP '2024-01-01 08:00' + i * INTERVAL '1 minute',
               TIMESTAMPTZ '2024-01-01 08:00+00' + i * INTERVAL '1 minute',
               ('00000000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'))::uuid,
               jsonb_build_object('n', i),
               ARRAY['t' || (i % 4)]
        FROM generate_series(0, {} - 1) AS i"""
        ).format(schema, sql.Literal(PG_ROWS)),
    ]


def _side_statements(schema: Any) -> list[Any]:
    """The tables and views the failure tests need: an injection-shaped value, a slow
    view, and a view whose every read tries to write."""
    from psycopg import sql

    return [
        sql.SQL("CREATE TABLE {}.secrets (id integer, note text)").format(schema),
        sql.SQL("INSERT INTO {}.secrets VALUES (1, 'x''; DROP TABLE t; --'), (2, 'plain')").format(
            schema
        ),
        sql.SQL("CREATE VIEW {}.slow AS SELECT 1 AS x FROM pg_sleep(2)").format(schema),
        sql.SQL("CREATE TABLE {}.sink (n integer)").format(schema),
        # A view whose every read tries to write: proves the scan transaction is read-only.
        sql.SQL(
            """CREATE FUNCTION {0}.write_once() RETURNS integer LANGUAGE sql VOLATILE AS
        $$ INSERT INTO {0}.sink VALUES (1) RETURNING n $$"""
        ).format(schema),
        sql.SQL("CREATE VIEW {0}.writer AS SELECT {0}.write_once() AS n").format(schema),
        sql.SQL("CREATE VIEW {0}.adults AS SELECT id, name FROM {0}.people WHERE age >= 60").format(
            schema
        ),
    ]


@pytest.fixture(scope="session")
def pg_schema(pg_url: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    name = f"kiteline_test_{uuid.uuid4().hex[:10]}"
    schema = sql.Identifier(name)
    statements = [*_people_statements(schema), *_side_statements(schema)]
    with psycopg.connect(pg_url, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)
    try:
        yield name
    finally:
        with psycopg.connect(pg_url, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))


@pytest.fixture(scope="session")
def pg_people(pg_url: str, pg_schema: str) -> list[dict[str, object]]:
    """The people rows as psycopg reads them, for computing expected answers."""
    import psycopg
    from psycopg import sql
    from psycopg.rows import dict_row

    with psycopg.connect(pg_url, row_factory=dict_row) as connection:
        query = sql.SQL("SELECT * FROM {}.people ORDER BY id").format(sql.Identifier(pg_schema))
        return list(connection.execute(query).fetchall())
