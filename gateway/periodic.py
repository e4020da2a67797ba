"""A daemon thread that runs one job every few seconds while the server runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``job`` every ``interval_s`` seconds, in a thread named ``name``, between
    ``start`` and ``stop``; an interval of zero or less never starts. A job that raises
    is logged and the next round runs as planned: a failed round never stops the timer."""

    def __init__(self, name: str, interval_s: float, job: Callable[[], object]) -> None:
        self.name = name
        self.interval_s = interval_s
        self._job = job
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval_s <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._job()
            except Exception:
                log.exception("%s: a round failed", self.name)
