"""Keyed hashing of secrets and filter literals before they reach the audit log.

As with Vault's audit devices, the log never holds the clear value, yet an officer who
knows a value can compute its hash and search for it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

PREFIX = "hmac-sha256:"


class Redactor:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the redaction key must be at least 32 bytes")
        self._key = key

    def hash(self, value: Any) -> str:
        """A stable keyed hash of any JSON value (strings hash their UTF-8 bytes)."""
        # Caller-supplied values can be anything JSON allows (integers beyond 64 bits
        # included), so the stdlib encoder, which accepts them all, gives the bytes.
        if isinstance(value, str):
            data = value.encode()
        else:
            data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
        return PREFIX + hmac.new(self._key, data, hashlib.sha256).hexdigest()
