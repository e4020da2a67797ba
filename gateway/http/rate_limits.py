"""Token buckets: at most ``burst`` requests at once, refilled at ``per_s`` a second."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from gateway.config import RateLimit

# Keys beyond this are forgotten oldest first: an attacker cycling addresses cannot
# grow the table without end (a forgotten key starts again with a full bucket).
MAX_KEYS = 100_000


class RateLimiter:
    def __init__(self, limit: RateLimit, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_s = limit.per_s
        self.burst = float(limit.burst)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._clock = clock

    def retry_after(self, key: str) -> int | None:
        """Take one request from ``key``'s bucket: None when allowed, else the whole
        seconds to wait before the next one would be."""
        now = self._clock()
        with self._lock:
            tokens, seen = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - seen) * self.per_s)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > MAX_KEYS:
                self._buckets.popitem(last=False)
        if allowed:
            return None
        return max(1, math.ceil((1.0 - tokens) / self.per_s))
