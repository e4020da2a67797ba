"""The casbin lines derived from the state database: allows from grants, explicit denies.

casbin's model says an explicit deny overrides any allow. The denies are derived here
from the facts that forbid every read whatever the grants say, so that the coarse check
refuses on its own terms in the request path, not only the Rego policy:

- a principal who is not active (suspended, departed), or whose kind governs access
  and does not read data (officers, admins: separation of duties);
- an org that is not active (every member is refused);
- a subject whose held modules break the separation rules (more modules than allowed,
  or modules that may never be held together), through its own grants or its org's.

Each deny line comes with the sentence that explains it. Rego checks the same house
rules again, and both engines must allow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from gateway.access.grants import GrantIndex, GrantRecord
from gateway.config import Separation
from policies import PolicyLine

READ = "read"
GOVERNING_KINDS = frozenset({"officer", "admin"})


@dataclass(frozen=True, slots=True)
class Standing:
    """A principal as the line derivation needs it."""

    name: str
    kind: str
    status: str
    org: str | None


def grant_lines(grants: Iterable[GrantRecord]) -> list[PolicyLine]:
    return [PolicyLine("p", (g.subject, g.module, g.dataset or "*", READ, "allow")) for g in grants]


def deny(subject: str) -> PolicyLine:
    """A deny on every dataset of every module for ``subject``."""
    return PolicyLine("p", (subject, "*", "*", READ, "deny"))


def separation_violations(held: set[str], rules: Separation) -> list[str]:
    """Why holding ``held`` together breaks the separation rules (empty: it does not)."""
    found = []
    limit = rules.max_modules_per_principal
    if limit is not None and len(held) > limit:
        found.append(
            f"holds grants on {len(held)} modules ({', '.join(sorted(held))}); at most "
            f"{limit} may be held at once"
        )
    for group in rules.exclusive:
        if len(group) > 1 and set(group) <= held:
            names = " and ".join(f"'{m}'" for m in sorted(group))
            found.append(f"holds modules {names}, which may not be held together")
    return found


def org_deny(
    org: str, status: str, *, index: GrantIndex, separation: Separation, at: datetime
) -> tuple[PolicyLine, str] | None:
    """The explicit deny of ``org`` and its reason, if it has one."""
    subject = f"org:{org}"
    if status != "active":
        return deny(subject), f"explicit deny: organization {org!r} is {status}"
    for problem in separation_violations(index.modules_held([subject], at), separation):
        return deny(subject), f"explicit deny (separation): organization {org!r} {problem}"
    return None


def principal_deny(
    p: Standing, *, org_denied: bool, index: GrantIndex, separation: Separation, at: datetime
) -> tuple[PolicyLine, str] | None:
    """The explicit deny of principal ``p`` and its reason, if it has one; ``org_denied``
    says whether its org has one."""
    subject = f"user:{p.name}"
    if p.status != "active":
        return deny(subject), f"explicit deny: principal {p.name!r} is {p.status}"
    if p.kind in GOVERNING_KINDS:
        return deny(subject), (
            f"explicit deny: {p.kind}s govern access and do not read data (separation of duties)"
        )
    if org_denied:
        # A member of an org already denied needs no line of its own.
        return None
    subjects = [subject] + ([f"org:{p.org}"] if p.org else [])
    for problem in separation_violations(index.modules_held(subjects, at), separation):
        return deny(subject), f"explicit deny (separation): principal {p.name!r} {problem}"
    return None


def deny_lines(
    *,
    principals: Iterable[Standing],
    orgs: Mapping[str, str],
    index: GrantIndex,
    separation: Separation,
    at: datetime,
) -> dict[PolicyLine, str]:
    """Every explicit deny, with its reason, for the state read at ``at``."""
    lines: dict[PolicyLine, str] = {}
    for org, status in sorted(orgs.items()):
        found = org_deny(org, status, index=index, separation=separation, at=at)
        if found is not None:
            lines[found[0]] = found[1]
    for p in sorted(principals, key=lambda p: p.name):
        org_denied = p.org is not None and deny(f"org:{p.org}") in lines
        found = principal_deny(p, org_denied=org_denied, index=index, separation=separation, at=at)
        if found is not None:
            lines[found[0]] = found[1]
    return lines
