"""Console sessions: an API token exchanged for an opaque cookie, with idle and
absolute expiry and a CSRF token per session.

The store lives in the serving process's memory: ``kiteline serve`` is one process,
and a restart logs everybody out, which fails closed. Only the SHA-256 of the cookie
value is kept as the key, so a dump of the store does not yield usable cookies. The
API token itself is kept, because every page re-authenticates with it: a revoked key
or an offboarded principal loses the console on the very next page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "kl_console"
LOGIN_COOKIE = "kl_console_login"
IDLE_S = 15 * 60.0
ABSOLUTE_S = 8 * 3600.0
MAX_SESSIONS = 10_000


@dataclass
class Session:
    token: str = field(repr=False)
    csrf: str = field(repr=False)
    created: float
    seen: float


def _key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def same_secret(given: str | None, expected: str | None) -> bool:
    """``given`` is the non-empty secret ``expected`` (compared in constant time)."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


class SessionStore:
    def __init__(
        self,
        *,
        idle_s: float = IDLE_S,
        absolute_s: float = ABSOLUTE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self._now = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, token: str) -> tuple[str, Session]:
        """A new session for ``token``: the cookie value and the session."""
        cookie = secrets.token_urlsafe(32)
        moment = self._now()
        session = Session(token=token, csrf=secrets.token_urlsafe(32), created=moment, seen=moment)
        with self._lock:
            self._expire(moment)
            if len(self._sessions) >= MAX_SESSIONS:
                # Drop the oldest: a flood of logins must not grow memory without end.
                oldest = min(self._sessions, key=lambda k: self._sessions[k].created)
                del self._sessions[oldest]
            self._sessions[_key(cookie)] = session
        return cookie, session

    def get(self, cookie: str | None) -> Session | None:
        """The live session behind ``cookie`` (its idle clock restarted), or None."""
        if not cookie:
            return None
        moment = self._now()
        with self._lock:
            session = self._sessions.get(_key(cookie))
            if session is None:
                return None
            if self._expired(session, moment):
                del self._sessions[_key(cookie)]
                return None
            session.seen = moment
            return session

    def close(self, cookie: str | None) -> None:
        if cookie:
            with self._lock:
                self._sessions.pop(_key(cookie), None)

    def _expired(self, session: Session, moment: float) -> bool:
        return moment - session.seen > self.idle_s or moment - session.created > self.absolute_s

    def _expire(self, moment: float) -> None:
        for key in [k for k, s in self._sessions.items() if self._expired(s, moment)]:
            del self._sessions[key]
