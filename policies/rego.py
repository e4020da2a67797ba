"""Embedded Rego: the policies in ``policies/*.rego`` evaluated in-process with regopy.

regopy wraps Microsoft's rego-cpp. Parsing and compiling the policy costs tens of
milliseconds, so it happens once per worker thread: each worker owns an interpreter and
a compiled bundle, and a decision only sets the input and runs the bundle's
``kiteline/access/decision`` entrypoint.

Four things about rego-cpp 1.5.2 shape this module and the policies:

* Strings handed over through its input API are stored as raw JSON string content and
  written back out verbatim, so a caller's ``"`` would end the string in the output and
  let a purpose like ``x"], "allow": true`` rewrite the decision. Every string is
  JSON-escaped on the way in, and the output is parsed strictly (no duplicate keys).
* Evaluation cannot be interrupted. A caller waits for its worker at most ``timeout_s``
  and then gives up with :class:`PolicyUnavailable`; the worker finishes in the
  background and takes the next job. Several workers keep one slow evaluation from
  blocking every request.
* Only syntax is checked when modules are added; unknown functions and conflicting
  rules surface during evaluation. Loading therefore ends with probe decisions, and a
  policy that cannot produce a well-formed decision is refused like a syntax error.
* The library replaces C++ ``operator new``/``delete``. When libstdc++ was loaded
  before regopy (numpy and pyarrow load it), memory allocated inside libstdc++ and
  released by rego-cpp aborts the whole process; the timezone builtins
  (``time.clock``, ``time.weekday``, ``time.date``) do exactly that, so the policies
  compute local time themselves (see window.rego). Importing regopy first in a process
  avoids the hazard for any builtin not yet found.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import re
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regopy import Interpreter, LogLevel, RegoError
from regopy import rego_shared as _capi

from policies.bundle import (
    DECISION_PATH,
    PolicyFile,
    PolicySet,
    ensure_decision,
    line_of,
    load_policy_set,
    parse_json,
    with_utc_offsets,
)
from policies.errors import PolicyCompileError, PolicyError, PolicyUnavailable

log = logging.getLogger(__name__)

__all__ = ["RegoEngine", "TestReport", "TestResult", "check_syntax", "run_tests"]

# Documents every load evaluates before the engine is handed out: one that must be
# denied for lack of everything, one that walks the allow path with a time window.
PROBES: tuple[dict[str, Any], ...] = (
    {},
    {
        "principal": {
            "name": "probe",
            "kind": "employee",
            "status": "active",
            "org": None,
            "org_status": None,
        },
        "action": "read",
        "dataset": {"name": "probe", "module": "probe"},
        "request": {
            "purpose": "probe",
            "profile": None,
            "now": "2026-01-05T12:00:00Z",
            "now_ns": 1_767_614_400_000_000_000,
        },
        "grants": [
            {
                "id": 1,
                "subject": "user:probe",
                "module": "probe",
                "dataset": None,
                "profile": "raw",
                "purpose": "probe",
                "approvals": 2,
                "row_cap": None,
                "row_filter": None,
                "window": {"days": ["mon"], "start": "00:00", "end": "24:00", "timezone": "UTC"},
            }
        ],
        "held_modules": ["probe"],
        "separation": {"max_modules_per_principal": None, "exclusive": []},
    },
)

# A module holding `with input as` makes rego-cpp 1.5.2 crash the process while
# compiling whenever a rule applies a builtin to the input; such test modules are
# reported as failed instead of loaded.
_WITH_INPUT = re.compile(r"\bwith\s+input\s+as\b")
_COMMENT = re.compile(r"#[^\n]*")
_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_\w+)\b", re.MULTILINE)
_ERROR_HEAD = re.compile(rb"\((error|errormsg)[ \n]")
_SIZED = re.compile(rb" (\d+):")
_SPAN = re.compile(rb"\|(\d+)\|(\d+)")
_INT64 = range(-(2**63), 2**63)

# rego-cpp keeps a JSON string's escaped form and prints it back as is.
_escape = json.JSONEncoder(ensure_ascii=False).encode


# --- test reports ----------------------------------------------------------------------


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


# --- rego-cpp error text -----------------------------------------------------------------


@dataclass(slots=True)
class _RegoErrorEntry:
    module: str | None = None
    offset: int | None = None
    message: str = ""


def _sized(raw: bytes, at: int) -> tuple[str, int] | None:
    """Read rego-cpp's ``<length>:<text>`` at ``at``; return the text and where it ends."""
    match = _SIZED.match(raw, at)
    if match is None:
        return None
    end = match.end() + int(match.group(1))
    return raw[match.end() : end].decode("utf-8", "replace"), end


def _parse_errors(text: str) -> list[_RegoErrorEntry]:
    """The ``(error <module>|<offset>|<len> (errormsg <text>) ...)`` entries of an error."""
    raw = text.encode("utf-8")
    entries: list[_RegoErrorEntry] = []
    for head in _ERROR_HEAD.finditer(raw):
        if head.group(1) == b"error":
            entry = _RegoErrorEntry()
            entries.append(entry)
            named = _sized(raw, head.end() - 1)
            if named is not None:
                entry.module, end = named
                span = _SPAN.match(raw, end)
                if span is not None:
                    entry.offset = int(span.group(1))
        else:
            said = _sized(raw, head.end() - 1)
            if said is None:
                continue
            if not entries or entries[-1].message:
                entries.append(_RegoErrorEntry())
            entries[-1].message = said[0]
    return entries


def _first_message(text: str) -> str:
    entries = _parse_errors(text)
    if entries and entries[0].message:
        return entries[0].message
    return text.strip().splitlines()[0] if text.strip() else "unknown rego-cpp error"


def _compile_error(policy_set: PolicySet, text: str, fallback: PolicyFile) -> PolicyCompileError:
    """Name the file and line of the first error rego-cpp reports."""
    entries = _parse_errors(text)
    entry = entries[0] if entries else _RegoErrorEntry(message=text.strip()[:200])
    policy_file = policy_set.file_named(entry.module) if entry.module else None
    policy_file = policy_file or fallback
    line = line_of(policy_file.text, entry.offset) if entry.offset is not None else None
    return PolicyCompileError(str(policy_file.path), line, entry.message or "does not compile")


def check_syntax(name: str, text: str) -> None:
    """Parse one module on its own; raise PolicyCompileError naming its line if it fails.

    Only syntax: a module may call functions from modules that are not loaded here.
    """
    interpreter = Interpreter()
    interpreter.log_level = LogLevel.NONE
    try:
        interpreter.add_module(name, text)
    except RegoError as exc:
        entries = _parse_errors(str(exc))
        entry = entries[0] if entries else _RegoErrorEntry(message=str(exc).strip()[:200])
        line = line_of(text, entry.offset) if entry.offset is not None else None
        raise PolicyCompileError(name, line, entry.message or "does not compile") from exc


# --- input ---------------------------------------------------------------------------------


class _InputWriter:
    """Builds a rego-cpp input value with one C call per node, strings escaped."""

    def __init__(self) -> None:
        lib = _capi.rego
        self._string = lib.regoInputString
        self._int = lib.regoInputInt
        self._float = lib.regoInputFloat
        self._bool = lib.regoInputBoolean
        self._null = lib.regoInputNull
        self._item = lib.regoInputObjectItem
        self._object = lib.regoInputObject
        self._array = lib.regoInputArray

    def push(self, handle: int, value: Any) -> None:
        if isinstance(value, str):
            self._string(handle, _escape(value)[1:-1].encode("utf-8"))
        elif value is None:
            self._null(handle)
        elif value is True or value is False:
            self._bool(handle, value)
        elif isinstance(value, int):
            if value not in _INT64:
                raise PolicyUnavailable(f"input integer {value} does not fit in 64 bits")
            self._int(handle, value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise PolicyUnavailable("input holds a non-finite number")
            self._float(handle, value)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise PolicyUnavailable(f"input has a non-string key {key!r}")
                self._string(handle, _escape(key)[1:-1].encode("utf-8"))
                self.push(handle, item)
                self._item(handle)
            self._object(handle, len(value))
        elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
            for item in value:
                self.push(handle, item)
            self._array(handle, len(value))
        else:
            raise PolicyUnavailable(f"input holds a {type(value).__name__}, which is not JSON")


# --- one compiled interpreter ------------------------------------------------------------


class _Session:
    """An interpreter with the compiled decision bundle; used by one thread only."""

    def __init__(self, policy_set: PolicySet) -> None:
        self._interpreter = Interpreter()
        self._interpreter.log_level = LogLevel.NONE  # errors are raised, not printed
        for module in policy_set.modules:
            try:
                self._interpreter.add_module(module.name, module.text)
            except RegoError as exc:
                raise _compile_error(policy_set, str(exc), module) from exc
        try:
            self._bundle = self._interpreter.build(None, [DECISION_PATH])
        except RegoError as exc:
            raise _compile_error(policy_set, str(exc), policy_set.modules[0]) from exc
        if not self._bundle.ok():
            raise PolicyCompileError(str(policy_set.directory), None, "the bundle did not build")
        self._writer = _InputWriter()
        self._entrypoint = DECISION_PATH.encode("utf-8")

    def evaluate(self, document: Mapping[str, Any]) -> dict[str, Any]:
        lib = _capi.rego
        impl = self._interpreter._impl
        handle = lib.regoNewInput()
        try:
            self._writer.push(handle, document)
            if lib.regoSetInput(impl, handle) != 0:
                raise PolicyUnavailable(f"rego-cpp refused the input: {_capi.rego_get_error(impl)}")
        finally:
            lib.regoFreeInput(handle)
        return _decision_from(_query(self._interpreter, self._bundle, self._entrypoint))


def _query(interpreter: Interpreter, bundle: Any, entrypoint: bytes) -> str:
    """The output text of one bundle entrypoint, or the error rego-cpp reports."""
    lib = _capi.rego
    output = lib.regoBundleQueryEntrypoint(interpreter._impl, bundle._impl, entrypoint)
    if not output:
        return _capi.rego_get_error(interpreter._impl)
    try:
        return _capi.rego_output_string(output)
    finally:
        lib.regoFreeOutput(output)


def _decision_from(text: str) -> dict[str, Any]:
    # An error is reported as an s-expression, sometimes with the output still "ok".
    if not text.startswith("{"):
        if text == "undefined":
            raise PolicyUnavailable("the policy defined no decision for this input")
        raise PolicyUnavailable(f"evaluation failed: {_first_message(text)}")
    try:
        document = parse_json(text)
    except ValueError as exc:
        raise PolicyUnavailable(f"the policy output is not valid JSON: {exc}") from exc
    expressions = document.get("expressions") if isinstance(document, dict) else None
    if not isinstance(expressions, list) or len(expressions) != 1:
        raise PolicyUnavailable("the policy output holds no single decision")
    return ensure_decision(expressions[0])


# --- workers ---------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Job:
    document: Mapping[str, Any]
    done: threading.Lock = field(default_factory=threading.Lock)
    result: dict[str, Any] | None = None
    error: BaseException | None = None
    abandoned: bool = False


class _Workers:
    """Threads that each own a session and take jobs from one queue.

    The threads are daemons holding no reference to the engine, so an engine that is
    dropped (or closed) stops them, and one stuck in rego-cpp never blocks exit.
    """

    def __init__(self, policy_set: PolicySet, count: int) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._count = count
        ready: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        for index in range(count):
            threading.Thread(
                target=_serve,
                args=(policy_set, self._jobs, ready),
                name=f"kiteline-rego-{index}",
                daemon=True,
            ).start()
        failures = [failure for failure in (ready.get() for _ in range(count)) if failure]
        if failures:
            self.close()
            raise failures[0]

    def run(self, document: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        job = _Job(document)
        job.done.acquire()
        self._jobs.put(job)
        if not job.done.acquire(timeout=timeout_s):
            job.abandoned = True
            raise PolicyUnavailable(f"policy evaluation took longer than {timeout_s:g} s")
        if job.error is not None:
            raise job.error
        if job.result is None:
            raise PolicyUnavailable("the policy worker returned nothing")
        return job.result

    def close(self) -> None:
        for _ in range(self._count):
            self._jobs.put(None)


def _serve(
    policy_set: PolicySet,
    jobs: queue.SimpleQueue[_Job | None],
    ready: queue.SimpleQueue[BaseException | None],
) -> None:
    try:
        session = _Session(policy_set)
    except BaseException as exc:  # reported to the constructor, which raises it
        ready.put(exc)
        return
    ready.put(None)
    while (job := jobs.get()) is not None:
        if job.abandoned:
            continue
        try:
            job.result = session.evaluate(job.document)
        except PolicyError as exc:
            job.error = exc
        except Exception as exc:  # a regopy or ctypes failure: the engine cannot answer
            log.exception("rego evaluation failed")
            job.error = PolicyUnavailable(f"evaluation failed: {exc}")
        job.done.release()


# --- the engine ------------------------------------------------------------------------------


class RegoEngine:
    """Evaluates ``data.kiteline.access.decision`` in-process.

    Thread-safe: decisions run on a small pool of workers, each with its own compiled
    interpreter. ``evaluate`` waits at most ``timeout_s``; past that, and on any
    evaluation error, it raises :class:`PolicyUnavailable` (the gateway answers 503).
    """

    def __init__(
        self, policy_set: PolicySet, *, timeout_s: float = 0.5, workers: int | None = None
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.policy_set = policy_set
        self.version: str = policy_set.version
        self.timeout_s = timeout_s
        # Compiled here first so that errors surface in the caller, with probes run once.
        probe = _Session(policy_set)
        for document in PROBES:
            try:
                probe.evaluate(document)
            except PolicyUnavailable as exc:
                raise PolicyCompileError(
                    str(policy_set.directory), None, f"the policy fails on a probe decision: {exc}"
                ) from exc
        del probe
        count = workers if workers is not None else min(4, os.cpu_count() or 1)
        self._workers = _Workers(policy_set, max(1, count))
        self._finalizer = weakref.finalize(self, self._workers.close)

    @classmethod
    def from_directory(
        cls, path: Path, *, timeout_s: float = 0.5, workers: int | None = None
    ) -> RegoEngine:
        """Load every ``*.rego`` under ``path`` except ``*_test.rego``."""
        return cls(load_policy_set(Path(path)), timeout_s=timeout_s, workers=workers)

    def evaluate(self, input: Mapping[str, Any]) -> dict[str, Any]:
        """The decision document for one request.

        The document goes to Rego with ``request.utc_offsets`` filled in for the zones
        of its grants' time windows (see :func:`policies.bundle.with_utc_offsets`).
        """
        if not self._finalizer.alive:
            raise PolicyUnavailable("the Rego engine is closed")
        return self._workers.run(with_utc_offsets(input), self.timeout_s)

    def close(self) -> None:
        """Stop the workers; later calls to ``evaluate`` raise PolicyUnavailable."""
        self._finalizer()

    def __enter__(self) -> RegoEngine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def run_tests(self) -> TestReport:
        """Run every ``test_*`` rule of the ``*_test.rego`` files beside the policies."""
        return run_tests(self.policy_set)


# --- the unit tests --------------------------------------------------------------------------


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
            raise _compile_error(policy_set, str(exc), module) from exc
    entrypoints = [name.removeprefix("data.").replace(".", "/") for name in names]
    try:
        bundle = interpreter.build(None, entrypoints)
    except RegoError as exc:
        raise _compile_error(policy_set, str(exc), policy_set.modules[0]) from exc
    results = []
    for name, entrypoint in zip(names, entrypoints, strict=True):
        text = _query(interpreter, bundle, entrypoint.encode("utf-8"))
        passed = text.replace(" ", "") == '{"expressions":[true]}'
        detail = "" if passed else _test_detail(text)
        results.append(TestResult(name, passed=passed, detail=detail))
    return results


def _test_detail(text: str) -> str:
    if text == "undefined":
        return "undefined: a condition of the test did not hold"
    if text.startswith("{"):
        return f"evaluated to {text[:200]}"
    return f"error: {_first_message(text)}"
