"""Versions of the pseudonym key: which one new extracts use, and every one ever used.

Keys are derived from the master key and the version number, so nothing secret is
stored here: the table records which versions exist (the newest is current) so that
tracing can try each of them. Rotating makes every recipient's pseudonyms change from
the next request on; extracts made before stay traceable.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, insert, select

from gateway.state.models import PseudonymKey

FIRST_VERSION = 1


def current_version(engine: Engine) -> int:
    with engine.connect() as conn:
        newest = conn.scalar(select(func.max(PseudonymKey.version)))
    return int(newest) if newest is not None else FIRST_VERSION


def all_versions(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        versions = [int(v) for v in conn.scalars(select(PseudonymKey.version))]
    return sorted(set(versions) | {FIRST_VERSION})


def rotate(engine: Engine, *, created_by: str) -> int:
    """Make a new version current and return it."""
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
        newest = conn.scalar(select(func.max(PseudonymKey.version)))
        version = (int(newest) if newest is not None else FIRST_VERSION) + 1
        if newest is None:
            # Record that version 1 existed, so listings show the whole history.
            conn.execute(
                insert(PseudonymKey).values(
                    version=FIRST_VERSION, created_at=datetime.now(UTC), created_by="initial"
                )
            )
        conn.execute(
            insert(PseudonymKey).values(
                version=version, created_at=datetime.now(UTC), created_by=created_by
            )
        )
    return version
