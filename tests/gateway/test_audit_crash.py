"""Crash safety: kill -9 a real server 50 times under concurrent reads."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gateway.cli.main import cli
from gateway.demo.workspace import Workspace
from tests.gateway.audit_crash import crash_cycles, missing_events

pytestmark = pytest.mark.slow


def test_every_response_has_its_event_after_50_kills(workspace: Workspace):
    outcome = crash_cycles(workspace, kills=50, readers=2, seed=50)
    assert outcome.kills == 50
    assert outcome.received, "no read completed: the harness measured nothing"
    assert missing_events(workspace, outcome) == []
    result = CliRunner(env={"KITELINE_TOKEN": workspace.tokens["victor"]}).invoke(
        cli, ["--config", str(workspace.config_path), "audit", "verify"]
    )
    assert result.exit_code == 0, result.output
