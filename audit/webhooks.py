"""Signing webhook deliveries with the Standard Webhooks scheme.

A delivery carries ``webhook-id`` (the same on every retry of one message),
``webhook-timestamp`` (Unix seconds of the attempt) and ``webhook-signature``:
``v1,`` followed by the base64 HMAC-SHA256 of ``id.timestamp.body`` under the secret.
Secrets are written ``whsec_`` followed by the base64 of the key bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

from audit.errors import AuditError

SECRET_PREFIX = "whsec_"
# Receivers reject deliveries whose timestamp is further than this from their clock.
TOLERANCE_S = 300


class WebhookSecretInvalid(AuditError):
    """A webhook secret is not ``whsec_`` followed by base64 key bytes."""


class SignatureInvalid(AuditError):
    """A delivery's signature or timestamp does not check out."""


def secret_key(secret: str) -> bytes:
    """The key bytes of a ``whsec_...`` secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise WebhookSecretInvalid(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookSecretInvalid("a webhook secret is base64 after its prefix") from exc
    if len(key) < 24:
        raise WebhookSecretInvalid("a webhook secret holds at least 24 key bytes")
    return key


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    key: bytes, msg_id: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """The three headers of one delivery attempt."""
    timestamp = int(time.time() if now is None else now)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, msg_id, timestamp, body),
    }


def verify_delivery(
    key: bytes, headers: dict[str, str], body: bytes, *, now: float | None = None
) -> None:
    """Check a delivery as a receiver does; raise SignatureInvalid if it does not hold."""
    try:
        msg_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        offered = headers["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise SignatureInvalid("a Standard Webhooks header is missing or malformed") from exc
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_S:
        raise SignatureInvalid("the delivery's timestamp is too far from now")
    expected = signature(key, msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise SignatureInvalid("no signature matches")
