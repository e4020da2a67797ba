"""Runs the grant sweep periodically inside the server (``grants.sweep_interval_s``)."""

from __future__ import annotations

import logging

from gateway.access.grant_requests import GrantWorkflow
from gateway.periodic import Periodic

log = logging.getLogger(__name__)


class PeriodicSweep:
    def __init__(self, workflow: GrantWorkflow, interval_s: float) -> None:
        self._workflow = workflow
        self._timer = Periodic("kiteline-sweep", interval_s, self._sweep)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _sweep(self) -> None:
        result = self._workflow.sweep(actor="sweeper")
        log.info(
            "grant sweep: %d expired, %d unused revoked, %d custodians to re-certify",
            len(result["expired"]),
            len(result["revoked_unused"]),
            len(result["recertify"]),
        )
