"""What a decision hands Rego, and what it records for replay (its basis)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gateway.access.decision_state import Snapshot
from gateway.access.grants import GrantRecord
from gateway.access.policy_lines import READ
from gateway.access.principals import Caller
from gateway.config import Separation
from policies import Obligations, Profile


def request_document(
    snapshot: Snapshot,
    separation: Separation,
    caller: Caller,
    dataset: str,
    module: str,
    at: datetime,
    purpose: str | None,
    profile: Profile | None,
    grants: list[GrantRecord],
) -> dict[str, Any]:
    """The Rego input of one request."""
    return {
        "principal": {
            "name": caller.name,
            "kind": caller.kind,
            "status": caller.status,
            "org": caller.org,
            "org_status": caller.org_status,
        },
        "action": READ,
        "dataset": {"name": dataset, "module": module},
        "request": {
            "purpose": purpose,
            "profile": profile,
            "now": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "now_ns": int(at.timestamp() * 1_000_000_000),
        },
        "grants": [
            {
                "id": g.id,
                "subject": g.subject,
                "module": g.module,
                "dataset": g.dataset,
                "profile": g.profile,
                "purpose": g.purpose,
                "approvals": g.approvals,
                "row_cap": g.row_cap,
                "row_filter": list(g.row_filter) or None,
                "window": g.window,
            }
            for g in grants
        ],
        "held_modules": sorted(snapshot.grants.modules_held(caller.subjects, at)),
        "separation": {
            "max_modules_per_principal": separation.max_modules_per_principal,
            "exclusive": [list(pair) for pair in separation.exclusive],
        },
    }


def decision_basis(
    redact: Callable[[Any], str],
    snapshot: Snapshot,
    subjects: tuple[str, ...],
    dataset: str,
    module: str,
    document: dict[str, Any],
    grants: list[GrantRecord],
) -> dict[str, Any]:
    """What the decision saw, free of secrets, for the audit log: the casbin lines
    that could match, the explicit denies among them, and the Rego input with the
    grants' filter literals hashed. ``Decider.replay`` decides again from it."""
    lines = [
        line
        for subject in subjects
        for line in snapshot.lines.get(subject, ())
        if line.split(", ")[1] in ("*", module)
    ]
    grant_inputs = [
        {
            **g,
            "row_filter": [{**f, "value": redact(f.get("value"))} for f in g["row_filter"]]
            if g.get("row_filter")
            else None,
        }
        for g in document["grants"]
    ]
    return {
        "subjects": list(subjects),
        "dataset": dataset,
        "module": module,
        "lines": lines,
        # Pairs, not a mapping: the audit log bounds the length of mapping keys.
        "denies": [[line, snapshot.denies[line]] for line in lines if line in snapshot.denies],
        "grant_columns": {str(g.id): list(g.columns) for g in grants if g.columns},
        "input": {**document, "grants": grant_inputs},
    }


def decided(obligations: Obligations | None, reasons: list[str]) -> dict[str, Any]:
    """The verdict as the basis records it (``None`` obligations: refused)."""
    return {
        "allowed": obligations is not None,
        "reasons": list(reasons),
        "profile": obligations.profile if obligations else None,
        "grant_id": obligations.grant_id if obligations else None,
    }
