"""The loaded policy set, and its atomic reload.

Rego files live in one directory (``policy.directory``, default: the packaged
``policies/``). The embedded engine evaluates them in-process; the ``opa`` engine pushes
the same files to an external OPA server at start and on every reload. A policy set that
fails to compile or fails its own ``*_test.rego`` tests is refused, and the one already
loaded stays in force.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from gateway.access.decisions import RegoEvaluator
from gateway.access.policy_files import POLICY_DIR, policy_version
from gateway.config import Config
from policies import FastPath, PolicyCompileError, PolicyError

log = logging.getLogger(__name__)


class PolicyTestsFailed(PolicyError):
    """The policy set compiles but its own tests fail."""


def policy_directory(config: Config) -> Path:
    if config.policy.directory:
        return config.resolve_path(config.policy.directory)
    return POLICY_DIR


_tested_versions: set[str] = set()


def compile_and_test(directory: Path, *, timeout_s: float) -> RegoEvaluator:
    """An embedded engine for ``directory``, refused unless every Rego test passes.

    A policy set is identified by the digest of its files; one that already passed its
    tests in this process is not tested again (gateways built in tests, reloads of an
    unchanged directory)."""
    from policies import RegoEngine

    engine = RegoEngine.from_directory(directory, timeout_s=timeout_s)
    if engine.version in _tested_versions:
        return engine
    report = engine.run_tests()
    if report.failed:
        raise PolicyTestsFailed(
            f"{len(report.failed)} policy test(s) fail: {', '.join(report.failed[:5])}"
        )
    _tested_versions.add(engine.version)
    return engine


class PolicyRuntime:
    """Holds the evaluator in force and the version digest recorded in audit events."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self.directory = policy_directory(config)
        self._lock = threading.Lock()
        self.evaluator = self._load()
        self.version = policy_version(self.directory)

    def _load(self) -> RegoEvaluator:
        policy = self._config.policy
        embedded = compile_and_test(self.directory, timeout_s=policy.timeout_s)
        if policy.engine == "embedded":
            # The packaged policy is answered in Python, any other by the engine.
            return FastPath(embedded)
        from policies import OpaEngine

        assert policy.opa_url is not None
        remote = OpaEngine(policy.opa_url, timeout_s=policy.timeout_s)
        remote.push_policies(self.directory)
        return remote

    def reload(self) -> str:
        """Load the directory again; on any error the old policy stays and the error is raised."""
        with self._lock:
            try:
                evaluator = self._load()
            except (PolicyCompileError, PolicyError) as exc:
                log.error("policy reload refused, keeping version %s: %s", self.version, exc)
                raise
            self.evaluator = evaluator
            self.version = policy_version(self.directory)
            log.info("policy reloaded: version %s", self.version)
            return self.version
