"""The built wheel, installed the way an operator installs it, serves a governed read.

Each case builds the wheel from a copy of the source tree, installs it into a fresh
virtual environment (with no extras, then with each declared extra) and drives the
installed `kiteline` command from outside the repository, so nothing of the checkout or
of the dev extra can stand in for a missing dependency.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.otlp_receiver import otlp_receiver
from tests.serving import free_port, running

ROOT = Path(__file__).resolve().parent.parent
PURPOSE = "surgical robot training"
#: What each extra adds that the plain install cannot do; a new extra needs a row here.
EXTRA_CHECKS = {
    "demo": "s3 demo",
    "spark": "spark demo",
    "otel": "traces exported",
    "dev": "not shipped to operators",
}

pytestmark = pytest.mark.slow


def clean_env() -> dict[str, str]:
    """The caller's environment without anything pointing Python at this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))
    )
    return env


def run(
    args: list[str], cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args,
        cwd=cwd,
        env={**clean_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source") / "kiteline"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "*.egg-info", "build", "dist", "__pycache__", ".*cache", ".kiteline*"
        ),
    )
    out = tmp_path_factory.mktemp("wheel")
    # The server depends on the two small distributions beside it in the repository;
    # they are built beside its wheel, where `install` finds them.
    distributions = [str(source), str(source / "proofs"), str(source / "client")]
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), *distributions], out)
    (built,) = out.glob("kiteline-0*.whl")
    return built


def install(wheel: Path, where: Path, extras: str = "") -> Path:
    """A fresh virtual environment holding the wheel; returns its bin folder."""
    run([sys.executable, "-m", "venv", str(where)], where.parent)
    bin_dir = where / "bin"
    target = f"kiteline[{extras}] @ {wheel.as_uri()}" if extras else str(wheel)
    run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--find-links",
            str(wheel.parent),
            target,
        ],
        where.parent,
    )
    return bin_dir


@pytest.fixture(scope="module")
def plain(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install(wheel, tmp_path_factory.mktemp("plain") / "venv")


@contextmanager
def serving(command: list[str], cwd: Path, port: int, timeout: float = 90) -> Iterator[str]:
    """Run an installed `kiteline` from outside the checkout, serving on ``port``."""
    log = cwd / f"serve-{port}.log"
    with running(command, port, log, cwd=cwd, env=clean_env(), timeout=timeout) as url:
        yield url


@contextmanager
def demo_served(
    wheel: Path, tmp_path: Path, extras: str, store: str, timeout: float = 90
) -> Iterator[tuple[str, dict[str, str]]]:
    """`kiteline demo --store <store>` installed with ``extras``: its URL and tokens."""
    bin_dir = install(wheel, tmp_path / "venv", extras=extras)
    port = free_port()
    workspace = tmp_path / "ws"
    command = [str(bin_dir / "kiteline"), "demo", "--store", store, "--workspace", str(workspace)]
    with serving([*command, "--port", str(port)], tmp_path, port, timeout) as url:
        yield url, json.loads((workspace / "tokens.json").read_text())


def governed_read(url: str, token: str, timeout: float = 30) -> dict:
    answer = httpx.post(
        f"{url}/v1/datasets/patients/query",
        headers={"Authorization": f"Bearer {token}"},
        json={"columns": ["patient_id", "birth_date"], "limit": 5, "purpose": PURPOSE},
        timeout=timeout,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def assert_anonymized(body: dict) -> None:
    assert body["profile"] == "anonymized"
    assert body["rows"], body
    for row in body["rows"]:
        assert row["patient_id"].startswith("p1_")  # a keyed pseudonym, not the id
        assert len(row["birth_date"]) == len("1950-1959")  # a band, not a date


def test_every_extra_has_a_check():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert set(project["optional-dependencies"]) == set(EXTRA_CHECKS)


def test_plain_install_leaves_out_the_dev_tools(plain: Path):
    for module in ("pytest", "hypothesis", "moto", "pandas"):
        found = subprocess.run(
            [str(plain / "python"), "-c", f"import {module}"],
            env=clean_env(),
            capture_output=True,
            cwd=plain,
        )
        assert found.returncode != 0, f"{module} came with the plain install"


def test_plain_install_checks_and_serves_the_demo(plain: Path, tmp_path: Path):
    kiteline = str(plain / "kiteline")
    assert "serve" in run([kiteline, "--help"], tmp_path).stdout
    port = free_port()
    workspace = tmp_path / "ws"
    run(
        [kiteline, "demo", "--workspace", str(workspace), "--port", str(port), "--no-serve"],
        tmp_path,
    )
    config = str(workspace / "kiteline.yaml")
    assert ": ok (" in run([kiteline, "--config", config, "check"], tmp_path).stdout
    tokens = json.loads((workspace / "tokens.json").read_text())
    command = [kiteline, "--config", config, "serve", "--port", str(port)]
    with serving(command, tmp_path, port) as url:
        assert_anonymized(governed_read(url, tokens["mei"]))
        # The console's templates and static files are in the wheel.
        assert "API token" in httpx.get(f"{url}/console/login").text
        assert httpx.get(f"{url}/console/static/htmx.min.js").status_code == 200
    # The officer's key: the command is audited as hers.
    run(
        [kiteline, "--config", config, "audit", "verify"],
        tmp_path,
        env={"KITELINE_TOKEN": tokens["victor"]},
    )


def demo_with_tracing(kiteline: str, tmp_path: Path, port: int, endpoint: str) -> Path:
    """A demo workspace whose configuration asks for traces sent to ``endpoint``."""
    workspace = tmp_path / "ws"
    run(
        [kiteline, "demo", "--workspace", str(workspace), "--port", str(port), "--no-serve"],
        tmp_path,
    )
    config = workspace / "kiteline.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["tracing"] = {"enabled": True, "endpoint": endpoint}
    config.write_text(yaml.safe_dump(settings, allow_unicode=True))
    return workspace


def test_plain_install_refuses_tracing_without_the_otel_extra(plain: Path, tmp_path: Path):
    kiteline = str(plain / "kiteline")
    port = free_port()
    workspace = demo_with_tracing(kiteline, tmp_path, port, "http://127.0.0.1:9/v1/traces")
    config = str(workspace / "kiteline.yaml")
    # Asked for and impossible: the server does not start, `check` says why too.
    for args in (["serve", "--port", str(port)], ["check"]):
        refused = subprocess.run(
            [kiteline, "--config", config, *args],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "kiteline[otel]" in refused.stderr, refused.stderr


def test_otel_extra_exports_the_traces_of_a_governed_read(wheel: Path, tmp_path: Path):
    bin_dir = install(wheel, tmp_path / "venv", extras="otel")
    kiteline = str(bin_dir / "kiteline")
    port = free_port()
    with otlp_receiver() as (endpoint, received):
        workspace = demo_with_tracing(kiteline, tmp_path, port, endpoint)
        tokens = json.loads((workspace / "tokens.json").read_text())
        command = [kiteline, "--config", str(workspace / "kiteline.yaml"), "serve"]
        with serving([*command, "--port", str(port)], tmp_path, port) as url:
            assert_anonymized(governed_read(url, tokens["mei"]))
            # Spans leave in batches (every 5 s by default), and all at shutdown.
        spans = received.wait_for(
            lambda found: any(s.name == "POST /v1/datasets/{name}/query" for _, s in found)
        )
    assert "kiteline.store.scan" in {span.name for _, span in spans}


def test_demo_extra_serves_from_a_local_s3_server(wheel: Path, tmp_path: Path):
    with demo_served(wheel, tmp_path, "demo", "s3") as (url, tokens):
        assert_anonymized(governed_read(url, tokens["mei"]))


def test_spark_extra_serves_from_a_local_spark_connect_server(wheel: Path, tmp_path: Path):
    # The extra carries the Spark Connect client and, in the same package, the server
    # the demo starts (Java comes from the system).
    with demo_served(wheel, tmp_path, "spark", "spark", timeout=240) as (url, tokens):
        # The first read warms the Spark server's JVM up: give it longer.
        assert_anonymized(governed_read(url, tokens["mei"], timeout=180))
