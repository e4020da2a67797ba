"""Fixtures for the gateway tests: a migrated state database per test, on SQLite and
(marked ``pg``) on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import Engine

from gateway.config import Dataset
from gateway.state.database import create_state_engine, migrate


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.pg)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def engine(state_url: str) -> Iterator[Engine]:
    engine = create_state_engine(state_url)
    migrate(engine)
    yield engine
    engine.dispose()


def dataset_and_schema(columns: dict[str, tuple[Any, pa.DataType]]) -> tuple[Dataset, pa.Schema]:
    """A dataset (module ``m``, store ``s``) of ``columns``, each name's classification
    and Arrow type, and the schema its store reports for it."""
    classes = {name: classification for name, (classification, _) in columns.items()}
    dataset = Dataset.model_validate(
        {"module": "m", "store": "s", "location": "x", "columns": classes}
    )
    return dataset, pa.schema([(name, type_) for name, (_, type_) in columns.items()])
