"""The policies' own unit tests: every ``test_*`` rule of the ``*_test.rego`` files."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from regopy import Interpreter, LogLevel, RegoError

from policies.bundle import PolicyFile, PolicySet
from policies.rego_text import compile_error, first_message, query

# A module holding `with input as` makes rego-cpp 1.5.2 crash the process while
# compiling whenever a rule applies a builtin to the input; such test modules are
# reported as failed instead of loaded.
_WITH_INPUT = re.compile(r"\bwith\s+input\s+as\b")
_COMMENT = re.compile(r"#[^\n]*")
_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_\w+)\b", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class TestResult:
    """One ``test_*`` rule: ``data.<package>.<rule>``, and why it failed."""

    __test__ = False  # a library class, not something for pytest to collect

    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TestReport:
    """The outcome of every test rule in the ``*_test.rego`` files.

    ``coverage`` stays None: rego-cpp records no trace from which line coverage could
    be computed.
    """

    __test__ = False

    results: tuple[TestResult, ...]
    coverage: float | None = None

    @property
    def passed(self) -> list[str]:
        return [r.name for r in self.results if r.passed]

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        """Tests were found and every one passed."""
        return bool(self.results) and all(r.passed for r in self.results)

    def failures(self) -> dict[str, str]:
        return {r.name: r.detail for r in self.results if not r.passed}


def _test_names(test_file: PolicyFile) -> list[str]:
    package = _PACKAGE.search(test_file.text)
    if package is None:
        return []
    rules = dict.fromkeys(_TEST_RULE.findall(test_file.text))
    return [f"data.{package.group(1)}.{rule}" for rule in rules]


def run_tests(policy_set: PolicySet) -> TestReport:
    """Evaluate each test rule once; a test passes when it is exactly ``true``."""
    results: list[TestResult] = []
    loadable: list[PolicyFile] = []
    for test_file in policy_set.tests:
        if _WITH_INPUT.search(_COMMENT.sub("", test_file.text)):
            results.extend(
                TestResult(
                    name,
                    passed=False,
                    detail=f"{test_file.name} uses `with input as`, which crashes rego-cpp; "
                    "call a function with the document instead",
                )
                for name in _test_names(test_file)
            )
        else:
            loadable.append(test_file)
    names = [name for test_file in loadable for name in _test_names(test_file)]
    if names:
        results.extend(_evaluate_tests(policy_set, loadable, names))
    return TestReport(tuple(results))


def _evaluate_tests(
    policy_set: PolicySet, test_files: Iterable[PolicyFile], names: list[str]
) -> list[TestResult]:
    interpreter = Interpreter()
    interpreter.log_level = LogLevel.NONE
    for module in (*policy_set.modules, *test_files):
        try:
            interpreter.add_module(module.name, module.text)
        except RegoError as exc:
            raise compile_error(policy_set, str(exc), module) from exc
    entrypoints = [name.removeprefix("data.").replace(".", "/") for name in names]
    try:
        bundle = interpreter.build(None, entrypoints)
    except RegoError as exc:
        raise compile_error(policy_set, str(exc), policy_set.modules[0]) from exc
    results = []
    for name, entrypoint in zip(names, entrypoints, strict=True):
        text = query(interpreter, bundle, entrypoint.encode("utf-8"))
        passed = text.replace(" ", "") == '{"expressions":[true]}'
        detail = "" if passed else _test_detail(text)
        results.append(TestResult(name, passed=passed, detail=detail))
    return results


def _test_detail(text: str) -> str:
    if text == "undefined":
        return "undefined: a condition of the test did not hold"
    if text.startswith("{"):
        return f"evaluated to {text[:200]}"
    return f"error: {first_message(text)}"
