"""Shared fixtures: a demo workspace, a state database on SQLite or PostgreSQL, clients."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from gateway.access.grants import add_grant
from gateway.config import Config, Settings
from gateway.demo.workspace import Workspace, create_workspace
from gateway.http.app import create_app
from tests.pg_schemas import private_schema

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def pg_url() -> str:
    return os.environ.get("KITELINE_TEST_PG_URL", DEFAULT_PG_URL)


def _pg_reachable(url: str) -> str | None:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return None
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {exc}".strip()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL server; skipped when absent unless KITELINE_REQUIRE_PG=1."""
    url = pg_url()
    problem = _pg_reachable(url)
    if problem is not None:
        message = f"PostgreSQL at {url} is not reachable ({problem}); set KITELINE_TEST_PG_URL"
        if os.environ.get("KITELINE_REQUIRE_PG") == "1":
            pytest.fail(message + " (KITELINE_REQUIRE_PG=1 makes this a failure)")
        pytest.skip(message)
    return url


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose connections live in a fresh, private schema, dropped afterwards."""
    with private_schema(postgres_url, f"kl_{uuid.uuid4().hex[:12]}") as url:
        yield url


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One demo workspace built per session; tests copy it rather than rebuild it."""
    return create_workspace(tmp_path_factory.mktemp("demo") / "ws", port=8787)


def copy_workspace(template: Workspace, target: Path) -> Workspace:
    shutil.copytree(template.root, target)
    return Workspace(target, target / "kiteline.yaml", dict(template.tokens))


@pytest.fixture
def workspace(demo_template: Workspace, tmp_path: Path) -> Workspace:
    """A private copy of the demo workspace (SQLite state), safe to change."""
    return copy_workspace(demo_template, tmp_path / "ws")


def client_for(workspace: Workspace) -> TestClient:
    settings = Settings(config=workspace.config_path)
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture
def client(workspace: Workspace) -> Iterator[TestClient]:
    with client_for(workspace) as test_client:
        yield test_client


def bearer(workspace: Workspace, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {workspace.tokens[name]}"}


def raising(error: Exception) -> Callable[..., Any]:
    """A stand-in for a function that fails: it raises ``error`` whatever it is passed."""

    def broken(*_args: object, **_kwargs: object) -> Any:
        raise error

    return broken


def add_test_grant(
    engine: Engine,
    config: Config,
    subject: str,
    profile: str,
    *,
    subject_type: str = "principal",
    days: int = 30,
    **target: Any,
) -> int:
    """Record a grant directly, as an administrator does: ``profile`` for ``subject`` (a
    principal unless ``subject_type`` says otherwise) on ``target`` (``dataset=`` or
    ``module=``, and any other field of ``add_grant``)."""
    return add_grant(
        engine,
        config,
        subject_type=subject_type,
        subject=subject,
        profile=profile,
        days=days,
        created_by="test",
        **target,
    )


@pytest.fixture(scope="session", autouse=True)
def record_responses() -> Iterator[None]:
    """Record what the in-process apps answer, for tests/test_openapi.py."""
    from tests.openapi_record import recording

    yield from recording()


@pytest.fixture(scope="session")
def spark_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real Spark Connect server (pyspark's own, local[2], 1 GiB heap) for the session.

    It is slow to start, so every Spark test shares it; it requires a bearer token."""
    from gateway.demo.spark import spark_connect_server

    with spark_connect_server(tmp_path_factory.mktemp("spark"), cores=2, memory="1g") as server:
        yield server
