"""Who may govern: the one place that authorizes grant, principal and access actions.

Reads go through the decider (decisions.py); everything that changes or reveals who
holds what goes through here. Each rule has its own refusal, naming the rule, so a
custodian or an admin can tell exactly why an action was refused.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from gateway.access.principals import Caller
from gateway.errors import AccessDenied

# Actions that belong to a role rather than to a module's custodians.
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "principals.offboard": frozenset({"admin"}),
    "principals.suspend": frozenset({"admin"}),
    "orgs.suspend": frozenset({"admin"}),
    "grants.sweep": frozenset({"admin", "officer"}),
    "grants.break_glass": frozenset({"admin", "officer"}),
    "grants.see_all": frozenset({"admin", "officer"}),
    "access.see_all": frozenset({"officer"}),
    # The web console: officers, admins and employees (custodians are employees);
    # partners, alumni and services use the API only.
    "console.use": frozenset({"officer", "admin", "employee"}),
}


@dataclass(frozen=True, slots=True)
class GrantFacts:
    """What authorization needs to know about one grant."""

    subject_type: str
    subject: str
    module: str
    requested_by: str | None


def has_role(caller: Caller, action: str) -> bool:
    return caller.kind in ROLE_ACTIONS[action]


def ensure_role(caller: Caller, action: str) -> None:
    ensure_in_good_standing(caller)
    if not has_role(caller, action):
        roles = " or ".join(sorted(ROLE_ACTIONS[action]))
        raise AccessDenied(f"only an {roles} may do {action!r}", rule=f"role:{action}")


def ensure_in_good_standing(caller: Caller) -> None:
    if caller.status != "active":
        raise AccessDenied(f"principal {caller.name!r} is {caller.status}", rule="status")
    if caller.org and caller.org_status not in (None, "active"):
        raise AccessDenied(f"org {caller.org!r} is {caller.org_status}", rule="org-status")


def is_custodian(caller: Caller, custodians: Collection[str]) -> bool:
    # Custodians are employees; a departed custodian's name no longer counts even if a
    # removal has not been recorded yet.
    return caller.kind == "employee" and caller.name in custodians


def is_party(caller: Caller, grant: GrantFacts) -> bool:
    """The caller asked for the grant or would hold it (directly or through their org)."""
    if grant.requested_by == caller.name:
        return True
    if grant.subject_type == "principal":
        return grant.subject == caller.name
    return caller.org == grant.subject


def may_view_grant(caller: Caller, grant: GrantFacts, custodians: Collection[str]) -> bool:
    return (
        has_role(caller, "grants.see_all")
        or is_party(caller, grant)
        or is_custodian(caller, custodians)
    )


def ensure_may_request(
    caller: Caller, *, subject_type: str, subject: str, org_admin: bool = False
) -> None:
    """Requests are for oneself, or by an org admin (or a platform admin) for a partner org."""
    ensure_in_good_standing(caller)
    if subject_type == "principal":
        if subject != caller.name:
            raise AccessDenied(
                "a principal requests grants for themselves only", rule="request:self"
            )
        return
    if caller.kind == "admin":
        return
    if caller.kind == "partner" and caller.org == subject and org_admin:
        return
    raise AccessDenied(
        f"only an admin of org {subject!r} may request grants for it", rule="request:org-admin"
    )


def ensure_may_decide(caller: Caller, grant: GrantFacts, custodians: Collection[str]) -> None:
    """Approve or deny: a custodian of the grant's module who is not a party to it."""
    ensure_in_good_standing(caller)
    if not is_custodian(caller, custodians):
        raise AccessDenied(
            f"only custodians of module {grant.module!r} approve or deny its grants "
            f"({', '.join(sorted(custodians)) or 'none left'})",
            rule="custodian",
        )
    if grant.requested_by == caller.name or (
        grant.subject_type == "principal" and grant.subject == caller.name
    ):
        raise AccessDenied("a requester never approves their own request", rule="own-request")
    if grant.subject_type == "org" and caller.org == grant.subject:
        raise AccessDenied("nobody approves a request for their own org", rule="own-org")


def ensure_may_break_glass(caller: Caller, grant: GrantFacts) -> None:
    ensure_role(caller, "grants.break_glass")
    if is_party(caller, grant):
        raise AccessDenied(
            "a requester never approves their own break-glass exception", rule="own-request"
        )


def ensure_may_revoke(caller: Caller, grant: GrantFacts, custodians: Collection[str]) -> None:
    """Custodians, officers and admins revoke; a holder may give up their own grant."""
    ensure_in_good_standing(caller)
    if caller.kind in ("admin", "officer") or is_custodian(caller, custodians):
        return
    if grant.subject_type == "principal" and grant.subject == caller.name:
        return
    raise AccessDenied(
        f"only custodians of module {grant.module!r}, officers, admins or the holder "
        "may revoke this grant",
        rule="revoke",
    )


def ensure_may_see_access(caller: Caller, module: str, custodians: Collection[str]) -> None:
    ensure_in_good_standing(caller)
    if has_role(caller, "access.see_all") or is_custodian(caller, custodians):
        return
    raise AccessDenied(
        f"only custodians of module {module!r} and officers may see who can read it",
        rule="access",
    )
