"""The request of the house rules, read once, and what each grant yields (access.rego).

See :mod:`policies.house_rules`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.house_terms import (
    KIND_CEILING,
    PURPOSE_BOUND_KINDS,
    RANKS,
    RAW_MIN_APPROVALS,
    Unsupported,
    is_int,
    optional_str,
)
from policies.house_window import Window


@dataclass(frozen=True, slots=True)
class Grant:
    raw: Mapping[str, Any]
    id: int
    profile: str
    purpose: str | None  # an empty purpose is no purpose
    approvals: int
    window: Window | None


@dataclass(frozen=True, slots=True)
class Request:
    name: str
    kind: str
    status: str | None
    org: str | None
    org_status: str | None
    ceiling: str | None
    purpose_bound: bool
    action: Any
    dataset: Mapping[str, Any]
    purpose: str | None
    requested: str | None
    now_ns: int
    offsets: Mapping[str, Any]
    grants: tuple[Grant, ...]
    held: frozenset[str]
    separation: Mapping[str, Any]


def _mapping(value: Any) -> Mapping[str, Any]:
    """Rego's ``object_or_empty``, for the dicts the gateway builds."""
    if type(value) is dict:
        return value
    if isinstance(value, Mapping):
        raise Unsupported("a mapping that is not a dict")
    return {}


def _grant(raw: Any) -> Grant:
    if type(raw) is not dict:
        raise Unsupported("a grant that is not a dict")
    grant_id, profile, approvals = raw.get("id"), raw.get("profile"), raw.get("approvals", 0)
    if not is_int(grant_id) or not isinstance(profile, str) or not is_int(approvals):
        raise Unsupported("a grant without an integer id, a profile or approvals")
    for key in ("module", "dataset"):
        if not isinstance(raw.get(key), str | None):
            raise Unsupported("a grant's module or dataset is not a string")
    if not isinstance(raw.get("row_filter"), list | tuple | None):
        raise Unsupported("a grant's row filter is not a list")
    if not (raw.get("row_cap") is None or is_int(raw.get("row_cap"))):
        raise Unsupported("a grant's row cap is not an integer")
    window = raw.get("window")
    if window is not None and type(window) is not dict:
        raise Unsupported("a grant's window is not a dict")
    purpose = raw.get("purpose")
    return Grant(
        raw,
        grant_id,
        profile,
        purpose if isinstance(purpose, str) and purpose != "" else None,
        approvals,
        Window(window) if window is not None else None,
    )


def _covers(grant: Grant, dataset: Mapping[str, Any]) -> bool:
    raw = grant.raw
    if "module" not in raw or "module" not in dataset or raw["module"] != dataset["module"]:
        return False
    if raw.get("dataset") is None:
        return True
    return "name" in dataset and raw["dataset"] == dataset["name"]


def read_request(doc: Any) -> Request:
    """access.rego's ``read_request``, refusing what it does not model."""
    root = _mapping(doc)
    principal = _mapping(root.get("principal"))
    request = _mapping(root.get("request"))
    dataset = _mapping(root.get("dataset"))
    name, kind = principal.get("name", "?"), principal.get("kind")
    now_ns, requested = request.get("now_ns"), request.get("profile")
    if not isinstance(name, str) or not isinstance(kind, str) or not is_int(now_ns):
        raise Unsupported("a principal without a name or kind, or a request without now_ns")
    if not all(isinstance(dataset.get(k), str) for k in ("name", "module")):
        raise Unsupported("a dataset without a name or module")
    grants = root.get("grants", [])
    held = root.get("held_modules", [])
    grants, held = (x if isinstance(x, list | tuple) else [] for x in (grants, held))
    if not all(isinstance(m, str) for m in held):
        raise Unsupported("held modules that are not names")
    purpose = request.get("purpose")
    return Request(
        name=name,
        kind=kind,
        status=optional_str(principal.get("status")),
        org=optional_str(principal.get("org")),
        org_status=optional_str(principal.get("org_status")),
        ceiling=KIND_CEILING.get(kind),
        purpose_bound=kind in PURPOSE_BOUND_KINDS,
        action=root.get("action"),
        dataset=dataset,
        purpose=purpose if isinstance(purpose, str) and purpose != "" else None,
        requested=optional_str(requested),
        now_ns=now_ns,
        offsets=_mapping(request.get("utc_offsets", {})),
        grants=tuple(g for g in map(_grant, grants) if _covers(g, dataset)),
        held=frozenset(held),
        separation=_mapping(root.get("separation", {})),
    )


# --- grants ------------------------------------------------------------------------------


def _purpose_ok(req: Request, g: Grant) -> bool:
    if g.purpose is None:
        return not req.purpose_bound
    return g.purpose == req.purpose


def _window_ok(req: Request, g: Grant) -> bool:
    return g.window is None or g.window.is_open(req.now_ns, req.offsets)


def grant_rank(req: Request, g: Grant) -> int:
    """What a grant yields right now, or -1 when it cannot be used."""
    if g.profile not in RANKS or req.ceiling is None:
        return -1
    if not (_purpose_ok(req, g) and _window_ok(req, g)):
        return -1
    cap = RANKS["raw"] if g.approvals >= RAW_MIN_APPROVALS else RANKS["pseudonymized"]
    return min(RANKS[g.profile], RANKS[req.ceiling], cap)


def best_grant(req: Request) -> tuple[Grant | None, int]:
    """The usable grant yielding the most; the first in input order among equals."""
    yields = [grant_rank(req, g) for g in req.grants]
    top = max(yields, default=-1)
    if top < 0:
        return None, -1
    return req.grants[yields.index(top)], top


def effective_rank(req: Request, best: int) -> int:
    if req.requested is None:
        return best
    asked = RANKS.get(req.requested)
    return asked if asked is not None and asked <= best else -1


def raw_refused(req: Request) -> bool:
    return req.requested == "raw" and req.purpose_bound


def org_inactive(req: Request) -> bool:
    if req.org is not None and req.org_status != "active":
        return True
    return req.org_status is not None and req.org_status != "active"


def above_grants(req: Request, best: int) -> bool:
    if req.requested not in RANKS or req.ceiling is None:
        return False
    return RANKS[req.ceiling] >= RANKS[req.requested] > best
