"""The decision state is rebuilt beside the one in force: decisions never wait on it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.access import decisions
from gateway.access.decisions import Decider
from gateway.access.grants import add_grant
from gateway.access.policy_runtime import PolicyRuntime
from gateway.access.principals import Caller, authenticate
from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from gateway.state.database import create_state_engine, read_versions


def test_decisions_at_the_old_versions_do_not_wait_for_a_rebuild(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = workspace.config
    engine = create_state_engine(config.state_url)
    caller = authenticate(engine, workspace.tokens["mei"])
    assert isinstance(caller, Caller)
    decider = Decider(engine, config, PolicyRuntime(config).evaluator)
    at = datetime.now(UTC)
    decider.snapshot(caller.versions, at)
    add_grant(
        engine,
        config,
        subject_type="principal",
        subject="erin",
        dataset="patients",
        profile="pseudonymized",
        days=30,
        created_by="test",
    )
    with engine.connect() as conn:
        changed = read_versions(conn)
    assert changed != caller.versions

    building, release = threading.Event(), threading.Event()
    load = decisions.load_snapshot

    def slow_load(*args: Any, **kwargs: Any) -> Any:
        building.set()
        assert release.wait(60), "the test never released the build"
        return load(*args, **kwargs)

    monkeypatch.setattr(decisions, "load_snapshot", slow_load)
    builder = threading.Thread(target=decider.snapshot, args=(changed, at))
    builder.start()
    assert building.wait(60)
    answers: list[Any] = []

    def read_at_old_versions() -> None:
        # Uncached: a dataset and purpose no decision asked for yet.
        for dataset, purpose in (("patients", SURGICAL_PURPOSE), ("studies", None)):
            answers.append(
                decider.decide(caller=caller, dataset=dataset, at=at, purpose=purpose).allowed
            )

    reader = threading.Thread(target=read_at_old_versions)
    reader.start()
    reader.join(30)
    finished_during_build = not reader.is_alive()
    release.set()
    builder.join(60)
    reader.join(60)
    engine.dispose()
    assert finished_during_build, "a decision at the old versions waited for the rebuild"
    assert answers == [True, False]
    assert decider.snapshot(changed, at).versions == changed
