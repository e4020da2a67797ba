"""A private PostgreSQL schema for one test or benchmark run, dropped afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


@contextmanager
def private_schema(base_url: str, schema: str) -> Iterator[str]:
    """``base_url`` with its connections' search path set to ``schema``, a fresh schema
    made for the block and dropped with everything in it when the block ends."""
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
