"""When a grant was last used, for the sweep that revokes unused grants.

Recorded at most once per grant per interval per process: the sweep counts in days, so
a write on every read would buy nothing. It never bumps the grants version, because
use does not change any decision.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine, update
from sqlalchemy.exc import SQLAlchemyError

from gateway.access.principals import now
from gateway.state.models import Grant

log = logging.getLogger(__name__)


class GrantUsage:
    def __init__(self, engine: Engine, *, interval_s: float = 3600.0) -> None:
        self._engine = engine
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._written: dict[int, float] = {}

    def touch(self, grant_id: int) -> None:
        moment = time.monotonic()
        with self._lock:
            last = self._written.get(grant_id)
            if last is not None and moment - last < self._interval_s:
                return
            self._written[grant_id] = moment
        try:
            with self._engine.begin() as conn:
                conn.execute(update(Grant).where(Grant.id == grant_id).values(last_used_at=now()))
        except SQLAlchemyError as exc:
            # Usage only feeds hygiene; a failed note must not fail a read that was allowed
            # and audited. The next read tries again.
            with self._lock:
                self._written.pop(grant_id, None)
            log.warning("could not record use of grant %s: %s", grant_id, type(exc).__name__)
