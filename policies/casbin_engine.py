"""The coarse check: may this subject read this dataset of this module?

Policy lines come from the state database through :class:`LineAdapter` (grants and
explicit denies become ``p`` lines). The gateway rebuilds the enforcer whenever the
version of the lines it was built from changes, so a new grant or a revocation is seen
by the next request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import casbin
from casbin import persist
from casbin.model import Model, fast_policy_filter

from policies.casbin_index import MODEL_PATH, Line, LineIndex, packaged_model, tokens
from policies.errors import PolicyUnavailable


@dataclass(frozen=True, slots=True)
class PolicyLine:
    """``p, sub, dom, obj, act, eft``."""

    ptype: str
    values: tuple[str, ...]

    def text(self) -> str:
        return ", ".join((self.ptype, *self.values))


class LineAdapter(persist.Adapter):
    """A read-only adapter over lines computed by the caller."""

    def __init__(self, lines: Iterable[PolicyLine]) -> None:
        self._lines = list(lines)

    def load_policy(self, model: Model) -> None:
        for line in self._lines:
            persist.load_policy_line(line.text(), model)

    def save_policy(self, model: Model) -> bool:  # noqa: ARG002 - the interface requires it
        raise NotImplementedError("policy lines are derived from the state database")


class CasbinEngine:
    """An immutable enforcer over one set of lines, indexed by subject.

    Under the packaged model the lines are answered by :class:`LineIndex` (the same
    verdicts and explaining lines, without compiling the matcher per line); under any
    other model, or with ``index=False``, by casbin's enforcer.
    """

    def __init__(
        self, lines: Sequence[PolicyLine], *, model_path: Path = MODEL_PATH, index: bool = True
    ) -> None:
        self._index: LineIndex | None = None
        if index and packaged_model(model_path):
            read = [tokens(line.ptype, line.values) for line in lines]
            if all(r is not None for r in read):
                self._index = LineIndex(r for r in read if r is not None)
                return
        try:
            self._enforcer = casbin.FastEnforcer(
                str(model_path), LineAdapter(lines), cache_key_order=[0]
            )
        except Exception as exc:  # casbin raises plain exceptions on bad lines or models
            raise PolicyUnavailable(f"casbin could not load its policy: {exc}") from exc
        self._policy = self._enforcer.model.model["p"]["p"].policy

    def replaced(self, lines: Mapping[str, Sequence[PolicyLine]]) -> CasbinEngine | None:
        """A new engine in which the subjects named in ``lines`` hold exactly those lines,
        or None when this engine cannot be changed in place of a full load (casbin's
        own enforcer, or a line its reader would parse differently)."""
        if self._index is None:
            return None
        read: dict[str, list[Line]] = {}
        for subject, held in lines.items():
            tokens_read = [tokens(line.ptype, line.values) for line in held]
            if any(t is None or t[0] != subject for t in tokens_read):
                return None
            read[subject] = [t for t in tokens_read if t is not None]
        engine = CasbinEngine.__new__(CasbinEngine)
        engine._index = self._index.replaced(read)
        return engine

    def _check_one(
        self, subject: str, module: str, dataset: str, action: str
    ) -> tuple[bool, list[str]]:
        if self._index is not None:
            allowed, line = self._index.check_one(subject, module, dataset, action)
            return allowed, list(line)
        with fast_policy_filter(self._policy, subject):
            allowed, matched = self._enforcer.enforce_ex(subject, module, dataset, action)
        return bool(allowed), list(matched)

    def check(
        self, *, subjects: Sequence[str], module: str, dataset: str, action: str
    ) -> tuple[bool, list[str]]:
        """Allowed when some subject has an allow line and no subject has a deny line.

        Returns the verdict and the matched lines (for explain)."""
        allowed = False
        denied = False
        matched: list[str] = []
        try:
            for subject in subjects:
                ok, line = self._check_one(subject, module, dataset, action)
                if line:
                    matched.append(", ".join(line))
                allowed = allowed or ok
                denied = denied or (not ok and bool(line) and line[-1] == "deny")
        except Exception as exc:
            raise PolicyUnavailable(f"casbin failed to evaluate: {exc}") from exc
        return allowed and not denied, matched


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: dict[str, object]
    passed: bool
    matched: tuple[str, ...]


def run_cases(path: Path) -> tuple[list[CaseResult], float]:
    """Run a YAML decision table against the model; returns the results and the share of
    policy lines that at least one case matched (line coverage)."""
    import yaml

    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    lines = [PolicyLine("p", tuple(str(v) for v in line)) for line in document["lines"]]
    engine = CasbinEngine(lines)
    results: list[CaseResult] = []
    touched: set[str] = set()
    for case in document["cases"]:
        allowed, matched = engine.check(
            subjects=[str(s) for s in case["subjects"]],
            module=str(case["module"]),
            dataset=str(case["dataset"]),
            action=str(case.get("action", "read")),
        )
        touched.update(matched)
        results.append(CaseResult(case, allowed is bool(case["expect"]), tuple(matched)))
    coverage = len({line.text()[3:] for line in lines} & touched) / max(len(lines), 1)
    return results, coverage
