"""``kiteline audit`` results for scripts (``--json``) and for people (a progress bar on a
terminal, and none on a pipe)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from gateway.demo.workspace import Workspace
from tests.gateway.test_cli_audit import run


def test_export_reports_what_it_wrote_as_json(workspace: Workspace, tmp_path: Path):
    out = tmp_path / "all.jsonl"
    code, text = run(workspace, "audit", "export", "--out", str(out), "--json")
    assert code == 0, text
    result = json.loads(text)
    assert result["events"] == len(out.read_text().splitlines()) > 0
    assert result["out"] == str(out)
    assert Path(result["checkpoint_file"]).read_text() and result["checkpoint_size"] > 0


def test_verify_checkpoint_and_reindex_report_as_json(workspace: Workspace):
    code, text = run(workspace, "audit", "checkpoint", "--json")
    assert code == 0, text
    checkpoint = json.loads(text)
    assert checkpoint["size"] > 0 and checkpoint["note"] and len(checkpoint["root"]) == 64
    code, text = run(workspace, "audit", "verify", "--json")
    assert code == 0, text
    verified = json.loads(text)
    assert verified["ok"] is True and verified["events"] >= checkpoint["size"]
    assert verified["finding"] is None
    code, text = run(workspace, "audit", "reindex", "--json")
    assert code == 0, text
    assert json.loads(text)["indexed"] >= checkpoint["size"]


def test_export_shows_progress_on_a_terminal_only(workspace: Workspace, tmp_path: Path):
    command = [sys.executable, "-m", "gateway.cli", "--config", str(workspace.config_path)]
    command += ["audit", "export", "--out", str(tmp_path / "out.jsonl")]
    env = {**os.environ, "KITELINE_TOKEN": workspace.tokens["victor"]}
    piped = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert "exporting" not in piped.stderr
    primary, secondary = pty.openpty()
    try:
        shown = subprocess.run(
            command, env=env, stdout=subprocess.PIPE, stderr=secondary, timeout=120
        )
        os.close(secondary)
        secondary = -1
        seen = b""
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:  # the terminal's other side is closed: all was read
                break
            if not data:
                break
            seen += data
    finally:
        if secondary != -1:
            os.close(secondary)
        os.close(primary)
    assert shown.returncode == 0
    assert b"exporting" in seen and b"100%" in seen
    assert b"wrote" in shown.stdout
