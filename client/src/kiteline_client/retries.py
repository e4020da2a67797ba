"""When and how long to wait before trying a request again.

Only answers that say "not now" are retried: 503 (a dependency is down, or the
gateway is restarting), 429 when the gateway names a ``Retry-After`` short enough to
wait for, and a connection that could not be made. Refusals (400, 401, 403, 404,
409, a 429 budget that resets tomorrow) are final and raised at once.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Retry:
    """``attempts`` tries in all; waits grow as ``base * 2**n`` up to ``cap`` seconds,
    with full jitter, unless the gateway's ``Retry-After`` says otherwise (a
    ``Retry-After`` longer than ``max_wait`` is not waited for)."""

    attempts: int = 5
    base: float = 0.25
    cap: float = 8.0
    max_wait: float = 60.0
    random: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, attempt: int) -> float:
        return self.random.uniform(0, min(self.cap, self.base * 2**attempt))

    def wait_for(self, status: int | None, retry_after: float | None, attempt: int) -> float | None:
        """Seconds to wait before the next try, or None when the answer is final.

        ``status`` is None for a connection failure; ``attempt`` counts from 0."""
        if attempt + 1 >= self.attempts:
            return None
        if status == 429:
            if retry_after is None or retry_after > self.max_wait:
                return None
            return retry_after + self.random.uniform(0, self.base)
        if status is None or status == 503:
            if retry_after is not None and retry_after <= self.max_wait:
                return retry_after + self.random.uniform(0, self.base)
            return self.backoff(attempt)
        return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds named by a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


NO_RETRY = Retry(attempts=1)

__all__ = ["NO_RETRY", "Retry", "parse_retry_after"]
