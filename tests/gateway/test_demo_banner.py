"""What `kiteline demo` prints under "Try:" works when pasted into a shell.

The commands run as a user runs them: bash, curl and jq against a real `kiteline serve`
of the demo workspace, and the installed `kiteline` for the audit check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving import free_port, running, serve_command

pytestmark = pytest.mark.slow


def printed_commands(banner: str) -> list[str]:
    """The shell commands of the banner's "Try:" block, continuation lines joined."""
    block = banner.split("Try:\n", 1)[1].replace("\\\n", " ")
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_the_commands_the_demo_prints_work_as_printed(tmp_path: Path):
    port = free_port()
    workspace = tmp_path / "ws"
    demo = [sys.executable, "-m", "gateway.cli", "demo", "--workspace", str(workspace)]
    banner = subprocess.run(
        [*demo, "--port", str(port), "--no-serve"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    commands = printed_commands(banner)
    assert len(commands) == 4, banner
    # The banner's `kiteline` is the one installed beside this interpreter.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with running(serve_command(workspace / "kiteline.yaml", port), port, tmp_path / "serve.log"):
        results = [
            subprocess.run(
                ["bash", "-c", command],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            for command in commands
        ]
    for command, result in zip(commands, results, strict=True):
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
    listing, allowed, denied, verified = (result.stdout for result in results)
    assert "patients" in {d["name"] for d in json.loads(listing)["datasets"]}
    answer = json.loads(allowed)
    assert answer["profile"] == "anonymized" and answer["rows"], answer
    assert all(row["patient_id"].startswith("p1_") for row in answer["rows"])
    refusal = json.loads(denied)
    assert refusal["status"] == 403 and refusal["type"].endswith("access-denied"), refusal
    assert verified.startswith("ok: "), verified
