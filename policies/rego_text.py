"""rego-cpp's error and output text: where an error points, what a query printed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from regopy import Interpreter, LogLevel, RegoError
from regopy import rego_shared as _capi

from policies.bundle import PolicyFile, PolicySet, line_of
from policies.errors import PolicyCompileError

_ERROR_HEAD = re.compile(rb"\((error|errormsg)[ \n]")
_SIZED = re.compile(rb" (\d+):")
_SPAN = re.compile(rb"\|(\d+)\|(\d+)")


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


def parse_errors(text: str) -> list[_RegoErrorEntry]:
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


def first_message(text: str) -> str:
    entries = parse_errors(text)
    if entries and entries[0].message:
        return entries[0].message
    return text.strip().splitlines()[0] if text.strip() else "unknown rego-cpp error"


def compile_error(policy_set: PolicySet, text: str, fallback: PolicyFile) -> PolicyCompileError:
    """Name the file and line of the first error rego-cpp reports."""
    entries = parse_errors(text)
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
        entries = parse_errors(str(exc))
        entry = entries[0] if entries else _RegoErrorEntry(message=str(exc).strip()[:200])
        line = line_of(text, entry.offset) if entry.offset is not None else None
        raise PolicyCompileError(name, line, entry.message or "does not compile") from exc


def query(interpreter: Interpreter, bundle: Any, entrypoint: bytes) -> str:
    """The output text of one bundle entrypoint, or the error rego-cpp reports."""
    lib = _capi.rego
    output = lib.regoBundleQueryEntrypoint(interpreter._impl, bundle._impl, entrypoint)
    if not output:
        return _capi.rego_get_error(interpreter._impl)
    try:
        return _capi.rego_output_string(output)
    finally:
        lib.regoFreeOutput(output)
