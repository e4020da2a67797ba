"""Engine construction and schema migrations for the state database."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, insert, select, update
from sqlalchemy import exc as exc_types
from sqlalchemy.engine import Connection
from sqlalchemy.pool import ConnectionPoolEntry

from gateway.state.deadline import bound_connection, remaining
from gateway.state.models import Version
from gateway.state.wal import AUTOCHECKPOINT_PAGES

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_NAMES = ("principals", "grants", "policy")


DEFAULT_TIMEOUT_S = 5.0


def _sqlite_pragmas(
    dbapi_connection: Any, record: ConnectionPoolEntry, *, busy_timeout_ms: int
) -> None:
    # WAL lets readers run beside the single writer; NORMAL sync is durable across
    # process crashes (the audit crash test relies on this), and busy_timeout turns
    # writer contention between gateway processes into waiting instead of errors, for
    # a bounded time: a lock held longer is an unavailable database (a 503).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    record.info["lock_wait_s"] = busy_timeout_ms / 1000
    cursor.execute("PRAGMA foreign_keys=ON")
    # Checkpoints are the WalCheckpointer's job; this threshold is only the backstop.
    cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
    cursor.close()


def _postgres_lock_timeout(
    dbapi_connection: Any, record: ConnectionPoolEntry, *, lock_timeout_ms: int
) -> None:
    # A lock held elsewhere (the audit log's advisory lock, a row) is waited for within
    # the bound, then the statement fails and the request answers 503.
    with dbapi_connection.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = {lock_timeout_ms}")
    dbapi_connection.commit()
    record.info["lock_wait_s"] = lock_timeout_ms / 1000


def _bound_by_deadline(
    dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any, *, timeout_s: float
) -> None:
    # Each checkout is a wait to come: bounded by what is left of the request's deadline.
    try:
        bound_connection(dbapi_connection, record.info, remaining(timeout_s))
    except Exception as exc:
        # A connection that cannot take the setting is broken: the pool replaces it.
        raise exc_types.DisconnectionError(str(type(exc).__name__)) from exc


def create_state_engine(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Engine:
    """The state database's engine; ``timeout_s`` bounds each wait for a lock or a
    connection, so an unavailable database is reported rather than waited on."""
    timeout_ms = max(1, int(timeout_s * 1000))
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        _create_private_file(url)
        engine = create_engine(
            url,
            pool_size=16,
            max_overflow=16,
            pool_timeout=timeout_s,
            # The connection returned last is handed out next: sequential requests
            # keep reusing one, whose page cache stays warm.
            pool_use_lifo=True,
            connect_args={"check_same_thread": False},
        )
        event.listen(
            engine, "connect", functools.partial(_sqlite_pragmas, busy_timeout_ms=timeout_ms)
        )
        # pysqlite's own transaction handling defers BEGIN; we issue BEGIN ourselves
        # so that writers can take the lock up front (BEGIN IMMEDIATE).
        event.listen(engine, "connect", _disable_pysqlite_begin)
        event.listen(engine, "begin", _begin)
        _listen_checkout(engine, timeout_s)
        return engine
    engine = create_engine(
        url,
        pool_size=16,
        max_overflow=16,
        pool_pre_ping=True,
        pool_timeout=timeout_s,
        connect_args={"connect_timeout": max(1, math.ceil(timeout_s))},
    )
    event.listen(
        engine, "connect", functools.partial(_postgres_lock_timeout, lock_timeout_ms=timeout_ms)
    )
    _listen_checkout(engine, timeout_s)
    return engine


def _listen_checkout(engine: Engine, timeout_s: float) -> None:
    event.listen(engine, "checkout", functools.partial(_bound_by_deadline, timeout_s=timeout_s))


def _create_private_file(url: str) -> None:
    """Create a SQLite state file readable by its owner only (it holds key hashes, the
    audit log and grants); an existing file is narrowed to 0600 too. SQLite's WAL and
    shared-memory files take the main file's mode."""
    path = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    with contextlib.suppress(OSError):
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)


@contextlib.contextmanager
def pooled_connection(engine: Engine) -> Iterator[Any]:
    """A driver connection from ``engine``'s pool, given back (ending its transaction)."""
    raw = engine.raw_connection()
    try:
        yield raw
    finally:
        raw.close()


def _disable_pysqlite_begin(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    dbapi_connection.isolation_level = None


def _begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def alembic_config(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe to run on every start."""
    command.upgrade(alembic_config(engine), "head")
    with engine.begin() as conn:
        present = set(conn.scalars(select(Version.name)))
        for name in VERSION_NAMES:
            if name not in present:
                conn.execute(insert(Version).values(name=name, value=0))


def is_current(engine: Engine) -> bool:
    script = ScriptDirectory.from_config(alembic_config(engine))
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == script.get_current_head()


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction that takes SQLite's write lock at its start. On SQLite a
    transaction that reads first and writes later fails at once, without waiting, when
    another connection wrote in between (the gateway's own background writers do)."""
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
        yield conn


def bump_version(conn: Connection, name: str) -> None:
    conn.execute(update(Version).where(Version.name == name).values(value=Version.value + 1))


def read_versions(conn: Connection) -> tuple[int, ...]:
    rows = {name: value for name, value in conn.execute(select(Version.name, Version.value))}
    return tuple(int(rows.get(name, 0)) for name in VERSION_NAMES)
