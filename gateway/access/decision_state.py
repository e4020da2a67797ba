"""The state a decision reads: casbin lines, the grant index and the explicit denies.

One snapshot per set of state versions; it is immutable, so a decision reads it
without a lock while the next one is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from gateway.access.grants import GrantIndex, active_grants
from gateway.access.policy_lines import Standing, deny_lines, grant_lines
from gateway.config import Separation
from gateway.state.models import Org, Principal
from policies import CasbinEngine


@dataclass(frozen=True, slots=True)
class Snapshot:
    versions: tuple[int, ...]
    casbin: CasbinEngine
    grants: GrantIndex
    # Explicit deny lines (as text) and the sentence explaining each.
    denies: dict[str, str]
    # The lines (as text, without the "p, ") by subject, for the decision's basis.
    lines: dict[str, tuple[str, ...]]
    # The separation denies hold while the grants they count do: the snapshot is
    # rebuilt at the earliest expiry.
    valid_until: datetime | None

    def fresh(self, versions: tuple[int, ...] | None, at: datetime) -> bool:
        """Whether this snapshot answers for a request made at ``versions``, at ``at``.

        Version counters only grow: a snapshot at versions no older than the request's
        holds every change the request must see."""
        return (
            versions is not None
            and len(self.versions) == len(versions)
            and all(mine >= theirs for mine, theirs in zip(self.versions, versions, strict=True))
            and (self.valid_until is None or at < self.valid_until)
        )


def load_snapshot(
    conn: Connection, versions: tuple[int, ...], separation: Separation, at: datetime
) -> Snapshot:
    """The decision state read from the state database at ``versions``."""
    grants = active_grants(conn)
    principals = [
        Standing(*row)
        for row in conn.execute(
            select(Principal.name, Principal.kind, Principal.status, Principal.org)
        )
    ]
    orgs = {name: status for name, status in conn.execute(select(Org.name, Org.status))}
    index = GrantIndex(grants)
    denies = deny_lines(principals=principals, orgs=orgs, index=index, separation=separation, at=at)
    lines = grant_lines(grants) + list(denies)
    by_subject: dict[str, list[str]] = {}
    for line in lines:
        by_subject.setdefault(line.values[0], []).append(line.text()[3:])
    return Snapshot(
        versions,
        CasbinEngine(lines),
        index,
        {line.text()[3:]: reason for line, reason in denies.items()},
        {subject: tuple(texts) for subject, texts in by_subject.items()},
        min((g.expires_at for g in grants if g.expires_at > at), default=None),
    )
