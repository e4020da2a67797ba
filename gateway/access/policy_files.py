"""The policy files shipped in ``policies/`` and their version digest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import policies

POLICY_DIR = Path(policies.__file__).parent
POLICY_SUFFIXES = (".conf", ".rego")


def policy_version(directory: Path = POLICY_DIR) -> str:
    """SHA-256 over the sorted names and contents of the policy files (first 16 hex)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if p.suffix in POLICY_SUFFIXES):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
