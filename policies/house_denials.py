"""The sentences of the house rules: denials, grant issues and notes (access.rego).

Each check answers a (usually empty) set, as in Rego, so one failing check never hides
another; :func:`explain` sorts them. See :mod:`policies.house_rules`.
"""

from __future__ import annotations

from policies.house_request import (
    Grant,
    Request,
    above_grants,
    grant_rank,
    org_inactive,
    raw_refused,
)
from policies.house_terms import (
    GOVERNING_KINDS,
    KIND_PLURAL,
    PROFILES,
    RANKS,
    RAW_MIN_APPROVALS,
    STATUS_PHRASE,
    quoted,
    say,
)
from policies.house_window import separation_violations


def _who(req: Request) -> set[str]:
    """deny_status, deny_org, deny_governing, deny_kind and deny_action."""
    found = set()
    if req.status != "active":
        phrase = STATUS_PHRASE.get(req.status or "") or say(
            "is not active (status ", req.status, ")"
        )
        found.add(say("principal ", quoted(req.name), " ", phrase, " and receives no data"))
    if org_inactive(req):
        phrase = STATUS_PHRASE.get(req.org_status or "") or say(
            "is not active (status ", req.org_status, ")"
        )
        found.add(
            say("organization ", quoted(req.org), " ", phrase, "; its members receive no data")
        )
    if req.kind in GOVERNING_KINDS:
        found.add(
            f"{KIND_PLURAL[req.kind]} govern access and do not read data (separation of duties)"
        )
    elif req.ceiling is None:
        found.add(say("principal kind ", quoted(req.kind), " may not read data"))
    if req.action != "read":
        found.add(
            say("action ", quoted(req.action), " is not granted here; grants cover 'read' only")
        )
    return found


def _profile(req: Request, best: int) -> set[str]:
    """deny_no_grant, deny_unknown_profile, deny_raw_for_outsiders, deny_ceiling,
    deny_above_grants and deny_approvals."""
    found = set()
    if not req.grants:
        found.add(
            say(
                "no active grant covers dataset ",
                quoted(req.dataset["name"]),
                " in module ",
                quoted(req.dataset["module"]),
            )
        )
    asked = req.requested
    if asked is not None and asked not in RANKS:
        found.add(f"unknown profile {quoted(asked)}; expected one of {', '.join(PROFILES)}")
    if raw_refused(req):
        found.add(f"{KIND_PLURAL[req.kind]} never receive the raw profile")
    elif asked in RANKS and req.ceiling is not None and RANKS[asked] > RANKS[req.ceiling]:
        found.add(
            say(
                KIND_PLURAL[req.kind], " receive at most the ", quoted(req.ceiling),
                " profile; the request asked for ", quoted(asked),
            )
        )  # fmt: skip
    if above_grants(req, best) and best >= 0:
        found.add(
            say(
                "the request asked for the ", quoted(asked),
                " profile; the usable grants allow at most ", quoted(PROFILES[best]),
            )
        )  # fmt: skip
    if asked == "raw" and above_grants(req, best):
        for g in req.grants:
            if g.profile == "raw" and grant_rank(req, g) >= 0 and g.approvals < RAW_MIN_APPROVALS:
                found.add(
                    say(
                        "the raw profile needs a grant approved by at least ", RAW_MIN_APPROVALS,
                        " custodians; grant ", g.id, " has ", g.approvals,
                    )
                )  # fmt: skip
    return found


def issue(req: Request, g: Grant) -> set[str]:
    """Why one grant could not be used."""
    found = set()
    if g.profile not in RANKS:
        found.add(say("grant ", g.id, " names an unknown profile ", quoted(g.profile)))
    if req.purpose_bound and g.purpose is None:
        found.add(
            say(
                "grant ", g.id, " has no purpose; ", KIND_PLURAL[req.kind],
                " may only use a grant issued for a stated purpose",
            )
        )  # fmt: skip
    if g.purpose is not None and req.purpose is None:
        found.add(
            f"a grant for purpose {quoted(g.purpose)} is required; the request stated no purpose"
        )
    elif g.purpose is not None and req.purpose != g.purpose:
        found.add(
            say(
                "grant ", g.id, " is for purpose ", quoted(g.purpose),
                "; the request stated ", quoted(req.purpose),
            )
        )  # fmt: skip
    w = g.window
    if w is not None:
        if w.offset(req.offsets) is None:
            found.add(
                say("grant ", g.id, " names a timezone with no known UTC offset: ", quoted(w.zone))
            )
        elif not w.is_open(req.now_ns, req.offsets):
            found.add(
                say(
                    "grant ", g.id, " may be used only ", w.describe(), "; it is now ",
                    w.local_time(req.now_ns, req.offsets), " there",
                )
            )  # fmt: skip
    return found


def denials_for(req: Request, best: int) -> set[str]:
    found = _who(req) | _profile(req, best)
    if (req.grants and best < 0) or above_grants(req, best):
        for g in req.grants:
            found |= issue(req, g)
    return found | separation_violations(req.held, req.separation)


def explain(denials: set[str]) -> list[str]:
    """The reasons of a refusal."""
    return sorted(denials) if denials else ["no grant and no rule allows this request"]


def notes(req: Request, best: Grant) -> set[str]:
    """What capped the grant that served an allowed request."""
    found = set()
    ceiling = req.ceiling
    assert ceiling is not None
    if best.profile == "raw" and req.purpose_bound:
        found.add(
            say(
                KIND_PLURAL[req.kind], " never receive the raw profile; grant ", best.id,
                " is served as ", quoted(ceiling),
            )
        )  # fmt: skip
    if not req.purpose_bound and RANKS[best.profile] > RANKS[ceiling]:
        found.add(
            say(
                KIND_PLURAL[req.kind], " receive at most the ", quoted(ceiling),
                " profile; grant ", best.id, " is served as ", quoted(ceiling),
            )
        )  # fmt: skip
    if best.profile == "raw" and ceiling == "raw" and best.approvals < RAW_MIN_APPROVALS:
        found.add(
            say(
                "grant ", best.id, " has ", best.approvals, " approval(s) and raw needs ",
                RAW_MIN_APPROVALS, ", so it is served as 'pseudonymized'",
            )
        )  # fmt: skip
    return found
