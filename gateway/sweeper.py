"""Runs the grant sweep periodically inside the server (``grants.sweep_interval_s``)."""

from __future__ import annotations

import logging
import threading

from gateway.grant_requests import GrantWorkflow

log = logging.getLogger(__name__)


class PeriodicSweep:
    def __init__(self, workflow: GrantWorkflow, interval_s: float) -> None:
        self._workflow = workflow
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="kiteline-sweep", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                result = self._workflow.sweep(actor="sweeper")
                log.info(
                    "grant sweep: %d expired, %d unused revoked, %d custodians to re-certify",
                    len(result["expired"]),
                    len(result["revoked_unused"]),
                    len(result["recertify"]),
                )
            except Exception:
                # The next sweep retries; a failed sweep never stops the server.
                log.exception("grant sweep failed")
