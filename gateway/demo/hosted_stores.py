"""The demo on a hosted-store shape: S3 (a local S3-protocol server) or PostgreSQL.

``kiteline demo --store s3`` starts moto's S3 server on a free loopback port, uploads
the seeded demo files to a bucket on it and points the workspace's store at it.
moto keeps objects in memory, so the server lives exactly as long as the demo and the
files are uploaded again on every start. ``kiteline demo --store postgres URL`` loads
the same rows into tables of one schema of that database. Either way the datasets,
principals, grants and keys are the local demo's, so the same principal asking the
same query gets the same answer as from the local demo.

Connection details that may be secret (the S3 keys, a PostgreSQL URL that may hold a
password) are written to 0600 files in the workspace and referenced from the
configuration with ``file:``; they are never inlined in ``kiteline.yaml`` or printed.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from gateway.access.keyring import write_secret_file
from gateway.demo.processes import (
    DemoStoreError,
    free_port,
    prepare_root,
    stop_process,
    terminate_exits,
    wait_until_listening,
)
from gateway.demo.workspace import DATASET_FILES, DemoStore, Workspace, create_workspace

log = logging.getLogger(__name__)

S3_BUCKET = "deepview-lake"
S3_PREFIX = "demo"
S3_REGION = "us-east-1"
S3_KEY_ID_FILE = "keys/s3-access-key-id"
S3_SECRET_FILE = "keys/s3-secret-access-key"
PG_URL_FILE = "keys/postgres.url"
PG_DEFAULT_SCHEMA = "kiteline_demo"
SEED_DIR = "seed"
# Marks a schema as the demo's own, so a reload never drops somebody else's schema.
PG_SCHEMA_COMMENT = "kiteline demo data (safe to drop)"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SERVER_START_S = 30.0


# --- S3 ----------------------------------------------------------------------------------


def s3_store(endpoint_url: str) -> DemoStore:
    store = "\n".join(
        [
            "  demo:",
            "    kind: s3",
            f"    endpoint_url: {endpoint_url}",
            f"    bucket: {S3_BUCKET}",
            f"    prefix: {S3_PREFIX}",
            f"    region: {S3_REGION}",
            "    path_style: true",
            f"    access_key_id: file:{S3_KEY_ID_FILE}",
            f"    secret_access_key: file:{S3_SECRET_FILE}",
        ]
    )
    where = {name: f"location: {path}" for name, path in DATASET_FILES.items()}
    return DemoStore(kind="s3", store=store, where=where, data_dir=SEED_DIR)


@contextmanager
def s3_server(log_path: Path) -> Iterator[str]:
    """Run moto's S3-protocol server on a free loopback port; yield its endpoint URL.

    The server is our own child process and is stopped when the block ends.
    """
    if importlib.util.find_spec("moto") is None:
        raise DemoStoreError(
            "the S3 demo runs a local S3-protocol server from moto, which is not installed; "
            "install it with: pip install 'kiteline[demo]' (make run installs it)"
        )
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_until_listening(
            port, process, log_path, name="S3 server", within_s=_SERVER_START_S, poll_s=0.1
        )
        log.info("local S3-protocol server (moto) on 127.0.0.1:%d, pid %d", port, process.pid)
        with terminate_exits():
            yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


def _s3_credentials(root: Path) -> tuple[str, str]:
    """The demo's S3 key pair, created once per workspace (moto accepts any pair)."""
    key_id, secret = root / S3_KEY_ID_FILE, root / S3_SECRET_FILE
    if not key_id.exists() or not secret.exists():
        write_secret_file(key_id, b"KLDEMO" + secrets.token_hex(7).upper().encode() + b"\n")
        write_secret_file(secret, secrets.token_urlsafe(30).encode() + b"\n")
    return key_id.read_text().strip(), secret.read_text().strip()


def upload_seed(root: Path, endpoint_url: str) -> int:
    """Create the bucket and upload the seeded files below the prefix; returns bytes sent."""
    access_key, secret_key = _s3_credentials(root)
    scheme, _, host = endpoint_url.partition("://")
    s3 = pafs.S3FileSystem(
        access_key=access_key,
        secret_key=secret_key,
        region=S3_REGION,
        scheme=scheme,
        endpoint_override=host,
        allow_bucket_creation=True,
    )
    s3.create_dir(S3_BUCKET)
    sent = 0
    for relative in DATASET_FILES.values():
        data = (root / SEED_DIR / relative).read_bytes()
        with s3.open_output_stream(f"{S3_BUCKET}/{S3_PREFIX}/{relative}") as out:
            out.write(data)
        sent += len(data)
    return sent


def _point_at(config_path: Path, endpoint_url: str) -> None:
    text = config_path.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^    endpoint_url: .*$", f"    endpoint_url: {endpoint_url}", text)
    config_path.write_text(text, encoding="utf-8")


@contextmanager
def s3_demo(root: Path, *, port: int = 8787, reset: bool = False) -> Iterator[Workspace]:
    """A demo workspace whose datasets live on a local S3 server running for the block."""
    root = root.resolve()
    prepare_root(root, "s3", reset)
    with s3_server(root / "s3-server.log") as endpoint_url:
        workspace = create_workspace(root, port=port, store=s3_store(endpoint_url))
        _s3_credentials(root)
        _point_at(workspace.config_path, endpoint_url)
        sent = upload_seed(root, endpoint_url)
        log.info("uploaded %d bytes of demo data to s3://%s/%s", sent, S3_BUCKET, S3_PREFIX)
        yield workspace


# --- PostgreSQL --------------------------------------------------------------------------


def postgres_store(schema: str) -> DemoStore:
    store = "\n".join(["  demo:", "    kind: postgres", f"    url: file:{PG_URL_FILE}"])
    where = {name: f"location: {schema}.{name}\n    format: table" for name in DATASET_FILES}
    return DemoStore(kind="postgres", store=store, where=where, data_dir=SEED_DIR)


def postgres_demo(
    root: Path,
    url: str,
    *,
    schema: str = PG_DEFAULT_SCHEMA,
    port: int = 8787,
    reset: bool = False,
) -> Workspace:
    """A demo workspace whose datasets are tables in ``schema`` of the database at ``url``.

    The tables are (re)loaded when the workspace is new or reset, or when they are
    missing; an existing schema that the demo did not create is never touched.
    """
    if not _SCHEMA_NAME.match(schema):
        raise DemoStoreError(f"schema name {schema!r} must match {_SCHEMA_NAME.pattern}")
    root = root.resolve()
    fresh = prepare_root(root, "postgres", reset)
    workspace = create_workspace(root, port=port, store=postgres_store(schema))
    write_secret_file(root / PG_URL_FILE, url.encode() + b"\n")
    if fresh or not _tables_present(url, schema):
        load_postgres(url, schema, root / SEED_DIR)
    return workspace


_PG_TYPES = {
    pa.string(): "text",
    pa.large_string(): "text",
    pa.int32(): "integer",
    pa.int64(): "bigint",
    pa.float64(): "double precision",
    pa.date32(): "date",
    pa.timestamp("us"): "timestamp",
    pa.bool_(): "boolean",
}


def _pg_type(data_type: pa.DataType) -> str:
    try:
        return _PG_TYPES[data_type]
    except KeyError:
        raise DemoStoreError(f"no PostgreSQL type for demo column type {data_type}") from None


def _tables_present(url: str, schema: str) -> bool:
    with _pg_connect(url) as connection:
        found = connection.execute(
            "SELECT count(*) FROM pg_catalog.pg_tables "
            "WHERE schemaname = %s AND tablename = ANY(%s)",
            [schema, list(DATASET_FILES)],
        ).fetchone()
    return bool(found and found[0] == len(DATASET_FILES))


def load_postgres(url: str, schema: str, seed_dir: Path) -> int:
    """(Re)create ``schema`` with one table per demo dataset; returns rows loaded."""
    from psycopg import sql

    loaded = 0
    with _pg_connect(url) as connection, connection.transaction():
        row = connection.execute(
            "SELECT pg_catalog.obj_description(oid, 'pg_namespace') "
            "FROM pg_catalog.pg_namespace WHERE nspname = %s",
            [schema],
        ).fetchone()
        if row is not None:
            if row[0] != PG_SCHEMA_COMMENT:
                raise DemoStoreError(
                    f"schema {schema!r} exists and was not created by the demo; "
                    "choose another with --pg-schema"
                )
            connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        connection.execute(
            sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
                sql.Identifier(schema), sql.Literal(PG_SCHEMA_COMMENT)
            )
        )
        for name, relative in DATASET_FILES.items():
            loaded += _load_table(connection, sql.Identifier(schema, name), seed_dir / relative)
    return loaded


def _load_table(connection: Any, table: Any, path: Path) -> int:
    from psycopg import sql

    data = pq.read_table(path)
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(field.name), sql.SQL(_pg_type(field.type)))
        for field in data.schema
    )
    connection.execute(sql.SQL("CREATE TABLE {} ({})").format(table, columns))
    names = sql.SQL(", ").join(sql.Identifier(name) for name in data.schema.names)
    # COPY in the files' row order, so unordered reads page as the local demo does.
    with connection.cursor() as cursor:
        with cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(table, names)) as copy:
            for batch in data.to_batches(max_chunksize=10_000):
                for row in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                    copy.write_row(row)
    connection.execute(sql.SQL("ANALYZE {}").format(table))
    return data.num_rows


def _pg_connect(url: str) -> Any:
    import psycopg

    try:
        return psycopg.connect(url, connect_timeout=5, autocommit=True)
    except psycopg.Error as exc:
        # The URL may hold a password: name only the kind of failure.
        raise DemoStoreError(
            f"cannot connect to the PostgreSQL server given for the demo ({type(exc).__name__})"
        ) from None
