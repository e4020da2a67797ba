"""The packaged house rules (access.rego with window.rego and separation.rego) in Python.

The Rego files stay the source of truth; these modules restate them for the documents
the gateway builds, so that an ordinary decision needs no round trip through rego-cpp.
:func:`decide` answers the very document ``data.kiteline.access.decision`` would, or
None when the document holds anything they do not model (a mistyped field, a time
given only as text, a number where a sentence needs a word): the caller then asks
Rego. ``tests/policies/test_house_rules.py`` runs both over the whole decision table and
generated cases and requires equal documents.

Only the packaged modules are restated: :mod:`policies.fast_path` uses this module
only while the loaded policy's digest is that of the packaged files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.house_denials import denials_for, explain, notes
from policies.house_request import (
    Grant,
    Request,
    best_grant,
    effective_rank,
    org_inactive,
    raw_refused,
    read_request,
)
from policies.house_terms import PROFILES, Unsupported, is_int, quoted, say
from policies.house_window import separation_violations


def decide(doc: Any) -> dict[str, Any] | None:
    """The decision document access.rego answers for ``doc``; None: ask Rego."""
    try:
        return _decide(read_request(doc))
    except Unsupported:
        return None


def _decide(req: Request) -> dict[str, Any]:
    best, best_rank = best_grant(req)
    rank = effective_rank(req, best_rank)
    denials = denials_for(req, best_rank)
    allowed = (
        not denials
        and rank >= 0
        and req.status == "active"
        and not org_inactive(req)
        and req.ceiling is not None
        and req.action == "read"
        and not raw_refused(req)
        and not separation_violations(req.held, req.separation)
    )
    if allowed:
        assert best is not None
        reasons = [
            say("allowed under grant ", best.id, " with the ", quoted(PROFILES[rank]), " profile"),
            *sorted(notes(req, best)),
        ]
    else:
        reasons = explain(denials)
    return {
        "allow": allowed,
        "reasons": reasons,
        "obligations": _obligations(req, best if allowed else None, rank),
    }


def _obligations(req: Request, best: Grant | None, rank: int) -> dict[str, Any]:
    purposes = sorted({g.purpose for g in req.grants if g.purpose is not None})
    required = req.purpose_bound or (
        bool(req.grants) and all(g.purpose is not None for g in req.grants)
    )
    if best is None:
        profile, grant_id, row_filters, row_cap = None, None, [], None
    else:
        row_filters = _plain(best.raw.get("row_filter") or [])
        profile, grant_id, row_cap = PROFILES[rank], best.id, best.raw.get("row_cap")
    return {
        "profile": profile,
        "grant_id": grant_id,
        "row_filters": row_filters,
        "row_cap": row_cap,
        "purpose_required": required,
        "purposes": purposes,
    }


def _plain(value: Any) -> Any:
    """A copy of a JSON value as a JSON parser would hand it back (lists, not tuples)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) or (isinstance(value, int) and not is_int(value)):
        # rego-cpp prints numbers its own way; a float or wide integer is left to it.
        raise Unsupported("a float or wide integer in a row filter")
    if value is not None and not isinstance(value, str | int):
        raise Unsupported("a row filter value that is not JSON")
    return value
