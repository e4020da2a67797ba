"""The Rego policy set as files on disk: what both Rego engines load and version.

A policy directory holds ``*.rego`` modules and, beside each, a ``*_test.rego`` with its
unit tests. Engines load the modules; tests are loaded only to run them. The policy
version is a digest of the modules alone, so editing a test never invalidates a cached
decision, while any change to a rule does.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from policies.errors import PolicyCompileError, PolicyUnavailable

# The document the gateway asks for, as a path under data.
DECISION_PACKAGE = "kiteline.access"
DECISION_RULE = "decision"
DECISION_PATH = "kiteline/access/decision"

TEST_SUFFIX = "_test.rego"

OBLIGATION_KEYS = frozenset(
    {"profile", "grant_id", "row_filters", "row_cap", "purpose_required", "purposes"}
)


@dataclass(frozen=True, slots=True)
class PolicyFile:
    """One Rego file: its name relative to the policy directory, and its text."""

    name: str
    text: str
    path: Path

    @property
    def is_test(self) -> bool:
        return self.name.endswith(TEST_SUFFIX)


@dataclass(frozen=True, slots=True)
class PolicySet:
    """The modules and the tests of one policy directory, in name order."""

    directory: Path
    modules: tuple[PolicyFile, ...]
    tests: tuple[PolicyFile, ...]

    @property
    def version(self) -> str:
        return policy_version((f.name, f.text) for f in self.modules)

    def file_named(self, name: str) -> PolicyFile | None:
        for policy_file in (*self.modules, *self.tests):
            if policy_file.name == name:
                return policy_file
        return None


def load_policy_set(directory: Path) -> PolicySet:
    """Read every ``*.rego`` under ``directory``; a missing or empty directory is an error."""
    if not directory.is_dir():
        raise PolicyCompileError(str(directory), None, "policy directory does not exist")
    files = []
    for path in sorted(directory.rglob("*.rego")):
        name = path.relative_to(directory).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyCompileError(str(path), None, f"cannot read: {exc}") from exc
        files.append(PolicyFile(name=name, text=text, path=path))
    modules = tuple(f for f in files if not f.is_test)
    if not modules:
        raise PolicyCompileError(str(directory), None, "no .rego policy modules found")
    return PolicySet(
        directory=directory, modules=modules, tests=tuple(f for f in files if f.is_test)
    )


def policy_version(files: Iterable[tuple[str, str]]) -> str:
    """sha256 over (name, text) pairs sorted by name; names and texts are length-framed."""
    digest = hashlib.sha256()
    for name, text in sorted(files):
        for part in (name.encode("utf-8"), text.encode("utf-8")):
            # Framing keeps ("ab", "c") and ("a", "bc") from hashing alike.
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


def line_of(text: str, offset: int) -> int:
    """The 1-based line holding byte ``offset`` of ``text`` (rego-cpp counts bytes)."""
    return text.encode("utf-8")[:offset].count(b"\n") + 1


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # A repeated key means the document was not produced by the policy as written
            # (a string escaped wrongly can smuggle one in); never pick one of them.
            raise ValueError(f"duplicate key {key!r} in the policy output")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-JSON number {name} in the policy output")


def parse_json(text: str) -> Any:
    """Strict JSON: no duplicate keys, no NaN or Infinity."""
    return json.loads(
        text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
    )


def ensure_decision(document: Any) -> dict[str, Any]:
    """Check the shape of a decision document; anything else means the engine failed.

    The gateway acts on this document, so a malformed one is treated like an engine
    that did not answer (fail closed), never patched up.
    """
    if not isinstance(document, dict):
        raise PolicyUnavailable("the policy returned no decision document")
    problems = []
    if set(document) != {"allow", "reasons", "obligations"}:
        problems.append(f"unexpected keys {sorted(document)}")
    if not isinstance(document.get("allow"), bool):
        problems.append("allow is not a boolean")
    reasons = document.get("reasons")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        problems.append("reasons is not a list of strings")
    obligations = document.get("obligations")
    if not isinstance(obligations, dict) or set(obligations) != OBLIGATION_KEYS:
        problems.append("obligations do not have the expected keys")
    elif not isinstance(obligations["row_filters"], list):
        problems.append("row_filters is not a list")
    elif document.get("allow") is True and not isinstance(obligations["profile"], str):
        problems.append("an allow without a profile")
    if problems:
        raise PolicyUnavailable("malformed decision: " + "; ".join(problems))
    return document


def ensure_json_input(value: Any, *, where: str = "input") -> None:
    """Refuse values that have no faithful JSON form before they reach an engine."""
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PolicyUnavailable(f"{where} holds a non-finite number")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PolicyUnavailable(f"{where} has a non-string key {key!r}")
            ensure_json_input(item, where=f"{where}.{key}")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            ensure_json_input(item, where=f"{where}[{index}]")
        return
    raise PolicyUnavailable(f"{where} holds a {type(value).__name__}, which is not JSON")


def with_utc_offsets(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """The document with ``request.utc_offsets`` for the zones its grant windows name.

    Rego evaluates time windows from the UTC instant and each zone's offset (see
    window.rego); the offset in force at the instant of the request, daylight saving
    included, comes from the IANA database here. Offsets the caller already gave are
    kept; unknown zones are left out, and the policy keeps their windows closed. The
    caller's document is not modified.
    """
    request = document.get("request")
    grants = document.get("grants")
    if not isinstance(request, Mapping) or not isinstance(grants, list):
        return document
    zones = {
        g["window"]["timezone"]
        for g in grants
        if isinstance(g, Mapping)
        and isinstance(g.get("window"), Mapping)
        and isinstance(g["window"].get("timezone"), str)
    }
    given = request.get("utc_offsets")
    offsets = dict(given) if isinstance(given, Mapping) else {}
    zones -= offsets.keys()
    instant = _request_instant(request)
    if not zones or instant is None:
        return document
    for zone in zones:
        try:
            delta = instant.astimezone(ZoneInfo(zone)).utcoffset()
        except (ZoneInfoNotFoundError, ValueError, OSError):
            continue  # not a zone; the policy says so in its reasons
        if delta is not None:
            offsets[zone] = int(delta.total_seconds())
    return {**document, "request": {**request, "utc_offsets": offsets}}


def _request_instant(request: Mapping[str, Any]) -> datetime | None:
    now_ns = request.get("now_ns")
    if isinstance(now_ns, int) and not isinstance(now_ns, bool):
        return datetime.fromtimestamp(now_ns // 1_000_000_000, tz=UTC)
    now = request.get("now")
    if isinstance(now, str):
        try:
            parsed = datetime.fromisoformat(now)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else None
    return None
