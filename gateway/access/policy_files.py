"""The policy files shipped in ``policies/`` and their version digest."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import policies

POLICY_DIR = Path(policies.__file__).parent
POLICY_SUFFIXES = (".conf", ".rego")


def policy_files(directory: Path = POLICY_DIR) -> dict[str, str]:
    """The versioned files of a policy directory by relative name: the casbin model
    and every Rego module and test the engines load (subfolders included)."""
    paths = [p for p in directory.iterdir() if p.suffix == ".conf"] + list(
        directory.rglob("*.rego")
    )
    return {
        path.relative_to(directory).as_posix(): path.read_bytes().decode("utf-8")
        for path in sorted(paths)
        if path.is_file()
    }


def version_of(files: Mapping[str, str]) -> str:
    """SHA-256 over the sorted names and contents of the files (first 16 hex)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def policy_version(directory: Path = POLICY_DIR) -> str:
    """The version audit events record: the digest of the directory's policy files."""
    return version_of(policy_files(directory))
