"""A local Spark Connect server, and the demo on it (``kiteline demo --store spark``).

pyspark's distribution carries Spark itself with the Connect server's classes, so
the server is started from the installed package with ``spark-submit`` and nothing is
downloaded (no ``--packages``). It needs a Java runtime (17 or newer) on ``PATH`` or
in ``JAVA_HOME``. It listens on a free loopback port, runs ``local[N]`` with a small
heap, and requires a bearer token that only this process and its children know.

The demo's datasets are the seeded Parquet files of the workspace, read by the Spark
server from their folder; principals, grants and keys are the local demo's, so the
same question gets the same governed answer.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.access.keyring import write_secret_file
from gateway.demo.hosted_stores import DemoStoreError, _prepare_root, _terminate_exits
from gateway.demo.workspace import DATASET_FILES, DemoStore, Workspace, create_workspace

log = logging.getLogger(__name__)

SPARK_TOKEN_FILE = "keys/spark-token"
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
_START_S = 120.0


@dataclass(frozen=True)
class SparkServer:
    url: str
    port: int
    token: str
    pid: int


def spark_home() -> Path:
    """The Spark distribution inside the installed pyspark package."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise DemoStoreError(
            "a local Spark Connect server needs pyspark: pip install 'kiteline[spark]'"
        )
    home = Path(spec.origin).parent
    if not any((home / "jars").glob("spark-connect_*.jar")):
        raise DemoStoreError(f"the pyspark at {home} has no Spark Connect server jar")
    return home


def _java_available() -> bool:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return True
    return shutil.which("java") is not None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def spark_connect_server(
    workdir: Path, *, cores: int = 2, memory: str = "1g", token: str | None = None
) -> Iterator[SparkServer]:
    """Run a Spark Connect server on a free loopback port for the block.

    The server is our own child process (its own process group, so that stopping it
    also stops the JVM that ``spark-submit`` starts) and is stopped when the block ends.
    """
    home = spark_home()
    if not _java_available():
        raise DemoStoreError(
            "a local Spark Connect server needs Java 17: apt-get install openjdk-17-jre-headless"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    token = token or secrets.token_urlsafe(24)
    command = [
        str(home / "bin" / "spark-submit"),
        "--master",
        f"local[{cores}]",
        "--driver-memory",
        memory,
        "--class",
        SERVER_CLASS,
        "--conf",
        f"spark.connect.grpc.binding.port={port}",
        "--conf",
        "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf",
        "spark.driver.host=127.0.0.1",
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        f"spark.sql.shuffle.partitions={cores}",
        "--conf",
        f"spark.sql.warehouse.dir={workdir / 'warehouse'}",
        "--conf",
        f"spark.local.dir={workdir / 'tmp'}",
        "--conf",
        "spark.log.level=WARN",
        "spark-internal",
    ]
    # The token travels in the environment, not on a command line other users can read.
    env = dict(
        os.environ,
        SPARK_HOME=str(home),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_CONNECT_AUTHENTICATE_TOKEN=token,
    )
    log_path = workdir / "spark-connect.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
    try:
        _wait_until_listening(port, process, log_path)
        log.info("local Spark Connect server on 127.0.0.1:%d, pid %d", port, process.pid)
        with _terminate_exits():
            yield SparkServer(f"sc://127.0.0.1:{port}", port, token, process.pid)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=10)


def _wait_until_listening(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + _START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoStoreError(f"the Spark Connect server exited early; see {log_path}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    _stop(process)
    raise DemoStoreError(
        f"the Spark Connect server did not start within {_START_S:.0f}s; see {log_path}"
    )


# --- the demo ----------------------------------------------------------------------------


def spark_store(data_root: Path, url: str) -> DemoStore:
    store = "\n".join(
        [
            "  demo:",
            "    kind: spark",
            f"    url: {url}",
            f"    token: file:{SPARK_TOKEN_FILE}",
            "    tls: false",
            f"    root: {data_root}",
        ]
    )
    where = {name: f"location: {path}" for name, path in DATASET_FILES.items()}
    return DemoStore(kind="spark", store=store, where=where, data_dir="data")


@contextmanager
def spark_demo(root: Path, *, port: int = 8787, reset: bool = False) -> Iterator[Workspace]:
    """A demo workspace whose datasets are read by a local Spark Connect server."""
    root = root.resolve()
    _prepare_root(root, "spark", reset)
    with spark_connect_server(root / "spark") as server:
        write_secret_file(root / SPARK_TOKEN_FILE, server.token.encode() + b"\n")
        workspace = create_workspace(root, port=port, store=spark_store(root / "data", server.url))
        text = workspace.config_path.read_text(encoding="utf-8")
        text = re.sub(r"(?m)^    url: sc://.*$", f"    url: {server.url}", text)
        workspace.config_path.write_text(text, encoding="utf-8")
        yield workspace
