"""The HR webhook's signature: HMAC-SHA256 over the timestamp and the raw body.

The sender signs ``<unix seconds>.<raw body>`` with the shared secret and sends
``X-Kiteline-Timestamp`` and ``X-Kiteline-Signature: sha256=<hex>``. A call older
or newer than the allowed skew is refused, so a captured call cannot be replayed
later; the comparison runs in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from pydantic import BaseModel, ConfigDict, Field

TIMESTAMP_HEADER = "x-kiteline-timestamp"
SIGNATURE_HEADER = "x-kiteline-signature"


class HrEvent(BaseModel):
    """``POST /v1/hooks/hr``: an employee has left."""

    model_config = ConfigDict(extra="ignore")

    event: str = Field(pattern=r"^employee\.departed$")
    principal: str = Field(min_length=1, max_length=64)
    reason: str = Field("left the company", max_length=512)


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(
    secret: bytes,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    max_skew_s: int,
    now: float | None = None,
) -> str | None:
    """None when the call is authentic and fresh, else a short reason (safe to audit)."""
    if not timestamp or not signature:
        return "missing signature headers"
    if not timestamp.isdigit() or len(timestamp) > 12:
        return "malformed timestamp"
    moment = time.time() if now is None else now
    if abs(moment - int(timestamp)) > max_skew_s:
        return "stale or future timestamp"
    expected = sign(secret, int(timestamp), body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        return "bad signature"
    return None
