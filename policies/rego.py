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
* The library replaces C++ ``operator new``/``delete``, so the order in which native
  libraries load matters. When libstdc++ was loaded before regopy (numpy and pyarrow
  load it), memory allocated inside libstdc++ and released by rego-cpp aborts the
  process; the timezone builtins (``time.clock``, ``time.weekday``, ``time.date``) do
  exactly that, so the policies compute local time themselves (see window.rego). The
  other order is worse: with rego-cpp's allocator in place first, creating pyarrow's S3
  filesystem aborts the process ("free(): invalid pointer"). So this module loads
  pyarrow before regopy, whatever the process imported first.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# pyarrow's native libraries must be in place before regopy's (see above).
import pyarrow  # noqa: F401, I001
from regopy import Interpreter, LogLevel, RegoError
from regopy import rego_shared as _capi

from policies.bundle import (
    DECISION_PATH,
    PolicySet,
    ensure_decision,
    load_policy_set,
    parse_json,
    with_utc_offsets,
)
from policies.errors import PolicyCompileError, PolicyError, PolicyUnavailable
from policies.rego_tests import TestReport, TestResult, run_tests
from policies.rego_text import check_syntax, compile_error, first_message, query

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

_INT64 = range(-(2**63), 2**63)

# rego-cpp keeps a JSON string's escaped form and prints it back as is.
_escape = json.JSONEncoder(ensure_ascii=False).encode


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
                raise compile_error(policy_set, str(exc), module) from exc
        try:
            self._bundle = self._interpreter.build(None, [DECISION_PATH])
        except RegoError as exc:
            raise compile_error(policy_set, str(exc), policy_set.modules[0]) from exc
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
        return _decision_from(query(self._interpreter, self._bundle, self._entrypoint))


def _decision_from(text: str) -> dict[str, Any]:
    # An error is reported as an s-expression, sometimes with the output still "ok".
    if not text.startswith("{"):
        if text == "undefined":
            raise PolicyUnavailable("the policy defined no decision for this input")
        raise PolicyUnavailable(f"evaluation failed: {first_message(text)}")
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
