"""Decisions answered in Python while the packaged policy is loaded; Rego for the rest.

A decision through rego-cpp costs a thread hop and the engine's evaluation, several
times what the house rules cost restated in Python (:mod:`policies.house_rules`). The
restatement holds for the packaged Rego modules only: :class:`FastPath` answers in
Python while the engine's policy digest is theirs, and hands the document to the engine
for any other policy and for any document the restatement does not model. Rego stays
the source of truth: the parity test requires both to give equal documents.

The documents come from the gateway's own request builder, so the values this path
does not read are JSON by construction; those it reads are checked on the way
(:mod:`policies.house_request`), and anything unexpected goes to the engine.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from policies.bundle import load_policy_set, with_utc_offsets
from policies.house_rules import decide

PACKAGED_DIR = Path(__file__).resolve().parent


class Evaluator(Protocol):
    version: str

    def evaluate(self, input: dict[str, Any]) -> dict[str, Any]: ...


@functools.cache
def packaged_version() -> str:
    """The digest of the Rego modules :mod:`policies.house_rules` restates."""
    return load_policy_set(PACKAGED_DIR).version


class FastPath:
    """An evaluator that answers the packaged policy in Python, and falls back to ``rego``."""

    def __init__(self, rego: Evaluator) -> None:
        self.rego = rego
        self.version = rego.version
        self.enabled = rego.version == packaged_version()

    def evaluate(self, input: dict[str, Any]) -> dict[str, Any]:
        if self.enabled:
            answer = self.answer(input)
            if answer is not None:
                return answer
        return self.rego.evaluate(input)

    @staticmethod
    def answer(input: Mapping[str, Any]) -> dict[str, Any] | None:
        """The Python answer, or None where Rego must decide."""
        return decide(with_utc_offsets(input))

    def __getattr__(self, name: str) -> Any:
        # run_tests, close, policy_set, timeout_s: the engine's own.
        return getattr(self.rego, name)
