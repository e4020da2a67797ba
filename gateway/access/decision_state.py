"""The state a decision reads: casbin lines, the grant index and the explicit denies.

One snapshot per set of state versions; it is immutable, so a decision reads it
without a lock while the next one is built beside it. After grant changes the next one
is derived from it (``apply_grant_changes``): only the subjects the grant change log
names, or whose grants expired since, are read and derived again, and everything else
is shared with the snapshot before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from gateway.access.grants import GrantIndex, GrantRecord, active_grants
from gateway.access.policy_lines import (
    Standing,
    deny,
    deny_lines,
    grant_lines,
    org_deny,
    principal_deny,
)
from gateway.config import Separation
from gateway.state.models import GrantChange, Org, Principal
from policies import CasbinEngine, PolicyLine

# Past this many logged changes a full load is cheaper than reading them one subject
# at a time.
MAX_CHANGES = 5000


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
    # derived again at the earliest expiry.
    valid_until: datetime | None
    # What the denies were derived from besides the grants, kept so that grant changes
    # can be applied without reading principals and orgs again (their changes bump the
    # principals version, which makes a full load).
    standing: Mapping[str, Standing] = field(default_factory=dict)
    orgs: Mapping[str, str] = field(default_factory=dict)
    members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    at: datetime | None = None

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


def _by_subject(lines: Iterable[PolicyLine]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in lines:
        found.setdefault(line.values[0], []).append(line.text()[3:])
    return found


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
    members: dict[str, list[str]] = {}
    for p in principals:
        if p.org is not None:
            members.setdefault(p.org, []).append(p.name)
    return Snapshot(
        versions,
        CasbinEngine(lines),
        index,
        {line.text()[3:]: reason for line, reason in denies.items()},
        {subject: tuple(texts) for subject, texts in _by_subject(lines).items()},
        index.next_expiry(at),
        {p.name: p for p in principals},
        orgs,
        {org: tuple(names) for org, names in members.items()},
        at,
    )


def pending_grant_changes(conn: Connection, since: int) -> set[tuple[str, str]] | None:
    """The (subject_type, subject) pairs the grant change log names after grants version
    ``since``; None when a full load is due instead (too many, or a change that names
    no subject)."""
    rows = conn.execute(
        select(GrantChange.subject_type, GrantChange.subject)
        .where(GrantChange.version > since)
        .limit(MAX_CHANGES + 1)
    ).all()
    if len(rows) > MAX_CHANGES or any(r.subject is None for r in rows):
        return None
    return {(r.subject_type, r.subject) for r in rows}


def _pair(subject: str) -> tuple[str, str]:
    kind, _, name = subject.partition(":")
    return ("principal" if kind == "user" else "org"), name


def apply_grant_changes(
    conn: Connection,
    old: Snapshot,
    versions: tuple[int, ...],
    changed: set[tuple[str, str]],
    separation: Separation,
    at: datetime,
) -> Snapshot | None:
    """``old`` with the grants of the ``changed`` subjects read again, and the denies and
    lines of every subject they, or the grants expired since ``old`` was derived, can
    affect derived again: what ``load_snapshot`` would build at ``versions``, when
    principals and orgs are as ``old`` saw them. None when ``old``'s engine cannot be
    changed in place (a model other than the packaged one)."""
    assert old.at is not None
    at = max(at, old.at)
    subjects = {("user:" if kind == "principal" else "org:") + name for kind, name in changed}
    expired = old.grants.expiring(old.at, at)
    held: dict[str, list[GrantRecord]] = {subject: [] for subject in subjects}
    for grant in active_grants(conn, changed) if changed else ():
        held[grant.subject].append(grant)
    index = old.grants.replaced(held)
    # An org's grants count towards each member's separation rules, and its deny
    # decides whether a member needs one of its own.
    touched = subjects | expired
    denied = set(touched)
    for subject in touched:
        if subject.startswith("org:"):
            denied.update(f"user:{name}" for name in old.members.get(subject[4:], ()))
    denies = dict(old.denies)
    lines = dict(old.lines)
    replaced: dict[str, list[PolicyLine]] = {}
    org_denied: dict[str, bool] = {}

    def is_org_denied(org: str | None) -> bool:
        if org is None:
            return False
        if org not in org_denied:
            if f"org:{org}" in denied:
                status = old.orgs.get(org)
                found = (
                    None
                    if status is None
                    else org_deny(org, status, index=index, separation=separation, at=at)
                )
                org_denied[org] = found is not None
            else:
                org_denied[org] = deny(f"org:{org}").text()[3:] in old.denies
        return org_denied[org]

    for subject in sorted(denied | subjects):
        kind, name = _pair(subject)
        found = None
        if kind == "org" and name in old.orgs:
            found = org_deny(name, old.orgs[name], index=index, separation=separation, at=at)
        elif kind == "principal" and name in old.standing:
            p = old.standing[name]
            found = principal_deny(
                p, org_denied=is_org_denied(p.org), index=index, separation=separation, at=at
            )
        text = deny(subject).text()[3:]
        denies.pop(text, None)
        own = grant_lines(index.held_by(subject))
        if found is not None:
            denies[text] = found[1]
            own.append(found[0])
        replaced[subject] = own
        if own:
            lines[subject] = tuple(line.text()[3:] for line in own)
        else:
            lines.pop(subject, None)
    casbin = old.casbin.replaced(replaced)
    if casbin is None:
        return None
    return Snapshot(
        versions,
        casbin,
        index,
        denies,
        lines,
        index.next_expiry(at),
        old.standing,
        old.orgs,
        old.members,
        at,
    )
