"""The decision state is rebuilt beside the one in force: decisions never wait on it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from gateway.access import decisions
from gateway.access.decisions import Decider
from gateway.access.policy_runtime import PolicyRuntime
from gateway.access.principals import Caller, authenticate
from gateway.config import Config
from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from gateway.state.database import create_state_engine, read_versions
from tests.conftest import add_test_grant


@dataclass(frozen=True)
class State:
    """The state database, the demo partner mei as authenticated now, and a decider."""

    config: Config
    engine: Engine
    caller: Caller
    decider: Decider


@pytest.fixture
def state(workspace: Workspace) -> Iterator[State]:
    config = workspace.config
    engine = create_state_engine(config.state_url)
    caller = authenticate(engine, workspace.tokens["mei"])
    assert isinstance(caller, Caller)
    yield State(config, engine, caller, Decider(engine, config, PolicyRuntime(config).evaluator))
    engine.dispose()


def test_decisions_at_the_old_versions_do_not_wait_for_a_rebuild(
    state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, caller, decider = state.engine, state.caller, state.decider
    at = datetime.now(UTC)
    decider.snapshot(caller.versions, at)
    add_test_grant(engine, state.config, "erin", "pseudonymized", dataset="patients")
    with engine.connect() as conn:
        changed = read_versions(conn)
    assert changed != caller.versions

    building, release = threading.Event(), threading.Event()

    def slow(derive: Any) -> Any:
        def slow_derive(*args: Any, **kwargs: Any) -> Any:
            building.set()
            assert release.wait(60), "the test never released the build"
            return derive(*args, **kwargs)

        return slow_derive

    # Whichever way the new state is derived: from the changes or in full.
    for name in ("load_snapshot", "apply_grant_changes"):
        monkeypatch.setattr(decisions, name, slow(getattr(decisions, name)))
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
    assert finished_during_build, "a decision at the old versions waited for the rebuild"
    assert answers == [True, False]
    assert decider.snapshot(changed, at).versions == changed


def test_a_request_made_before_a_change_is_answered_from_the_newer_state(
    state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The newer state holds every change the request must see; reading the versions
    # again (and waiting for any build in progress) would tell it nothing more.
    caller, decider = state.caller, state.decider
    at = datetime.now(UTC)
    add_test_grant(
        state.engine,
        state.config,
        "surgibot",
        "aggregate",
        subject_type="org",
        dataset="studies",
        purpose=SURGICAL_PURPOSE,
    )
    newer = decider.snapshot(None, at)
    assert newer.versions != caller.versions

    def no_reads(*_: Any) -> Any:
        raise AssertionError("the state was read again")

    monkeypatch.setattr(decisions, "read_versions", no_reads)
    assert decider.snapshot(caller.versions, at) is newer
    assert decider.decide(
        caller=caller, dataset="patients", at=at, purpose=SURGICAL_PURPOSE
    ).allowed
