"""Flight tickets: short-lived, signed promises of one decided read.

A ticket is issued once the chokepoint allowed a read (``Gateway.flight_ticket``) and
names the caller, the dataset, the query body and an expiry, under an HMAC-SHA256 of a
key derived from the master key for this purpose alone. Redeeming it runs the read
through the chokepoint again, so a ticket never carries a decision: a grant revoked
after it was issued refuses its read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

import orjson

from gateway.errors import AccessDenied, InvalidRequest

MAC_BYTES = 32
VERSION = 1


@dataclass(frozen=True, slots=True)
class Ticket:
    principal: str
    dataset: str
    body: bytes
    expires: float


class TicketCodec:
    def __init__(self, key: bytes, *, ttl_s: float) -> None:
        self._key = key
        self.ttl_s = ttl_s

    def issue(self, *, principal: str, dataset: str, body: bytes) -> tuple[bytes, float]:
        """The ticket's bytes and when it expires (seconds since the epoch)."""
        expires = time.time() + self.ttl_s
        payload = orjson.dumps(
            {
                "v": VERSION,
                "p": principal,
                "d": dataset,
                "q": base64.b64encode(body).decode(),
                "e": expires,
            }
        )
        return payload + self._mac(payload), expires

    def redeem(self, ticket: bytes, *, principal: str) -> Ticket:
        """The read a ticket promises to ``principal``; refused when it was not issued by
        this gateway, was altered, has expired or was issued to someone else."""
        payload, mac = ticket[:-MAC_BYTES], ticket[-MAC_BYTES:]
        if len(ticket) <= MAC_BYTES or not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidRequest("the ticket was not issued by this gateway or was altered")
        data = orjson.loads(payload)
        if data.get("v") != VERSION:
            raise InvalidRequest("the ticket was not issued by this gateway or was altered")
        if time.time() > float(data["e"]):
            raise InvalidRequest(
                "the ticket has expired: ask for a new one (GetFlightInfo)", rule="ticket-expired"
            )
        if not hmac.compare_digest(str(data["p"]).encode(), principal.encode()):
            raise AccessDenied("the ticket was issued to another caller", rule="ticket-caller")
        return Ticket(
            principal=data["p"],
            dataset=data["d"],
            body=base64.b64decode(data["q"]),
            expires=float(data["e"]),
        )

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()
