"""Runs the grant sweep periodically inside the server (``grants.sweep_interval_s``)."""

from __future__ import annotations

import logging

from gateway.access.grant_requests import GrantWorkflow
from gateway.periodic import Periodic

log = logging.getLogger(__name__)


class PeriodicSweep(Periodic):
    def __init__(self, workflow: GrantWorkflow, interval_s: float) -> None:
        super().__init__("kiteline-sweep", interval_s, self._sweep)
        self._workflow = workflow

    def _sweep(self) -> None:
        result = self._workflow.sweep(actor="sweeper")
        log.info(
            "grant sweep: %d expired, %d unused revoked, %d custodians to re-certify",
            len(result["expired"]),
            len(result["revoked_unused"]),
            len(result["recertify"]),
        )
