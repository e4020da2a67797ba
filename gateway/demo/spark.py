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
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.access.keyring import write_secret_file
from gateway.demo.processes import (
    DemoStoreError,
    free_port,
    prepare_root,
    stop_group,
    terminate_exits,
    wait_until_listening,
)
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
    port = free_port()
    token = token or secrets.token_urlsafe(24)
    command = _submit_command(home, workdir, port=port, cores=cores, memory=memory)
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
        wait_until_listening(
            port, process, log_path, name="Spark Connect server", within_s=_START_S, poll_s=0.2
        )
        log.info("local Spark Connect server on 127.0.0.1:%d, pid %d", port, process.pid)
        with terminate_exits():
            yield SparkServer(f"sc://127.0.0.1:{port}", port, token, process.pid)
    finally:
        stop_group(process)


def _submit_command(home: Path, workdir: Path, *, port: int, cores: int, memory: str) -> list[str]:
    """``spark-submit`` of the Connect server: loopback only, no UI, a small heap."""
    settings = {
        "spark.connect.grpc.binding.port": str(port),
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": str(cores),
        "spark.sql.warehouse.dir": str(workdir / "warehouse"),
        "spark.local.dir": str(workdir / "tmp"),
        "spark.log.level": "WARN",
    }
    command = [str(home / "bin" / "spark-submit"), "--master", f"local[{cores}]"]
    command += ["--driver-memory", memory, "--class", SERVER_CLASS]
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    return [*command, "spark-internal"]


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
    prepare_root(root, "spark", reset)
    with spark_connect_server(root / "spark") as server:
        write_secret_file(root / SPARK_TOKEN_FILE, server.token.encode() + b"\n")
        workspace = create_workspace(root, port=port, store=spark_store(root / "data", server.url))
        text = workspace.config_path.read_text(encoding="utf-8")
        text = re.sub(r"(?m)^    url: sc://.*$", f"    url: {server.url}", text)
        workspace.config_path.write_text(text, encoding="utf-8")
        yield workspace
