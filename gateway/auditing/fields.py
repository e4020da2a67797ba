"""The fields of an audit event, bounded before they are hashed.

Anything a client controls is clipped: the searchable columns have fixed widths, and
clipping before hashing keeps the stored column and the hashed body in agreement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.access.principals import Caller

_MAX_TEXT = 512
_MAX_ITEMS = 1000
_MAX_NAME = 64


@dataclass(frozen=True, slots=True)
class RequestMeta:
    request_id: str
    client: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """An event built but not yet appended (see ``AuditLog.append_linked``)."""

    event: dict[str, Any]
    moment: datetime


def _clip(value: str | None, limit: int = _MAX_TEXT) -> str | None:
    # Anything a client controls is bounded; JSON encoding keeps newlines and escapes inert.
    return None if value is None else value[:limit]


def _bounded(value: Any) -> Any:
    """Bound every string and list a caller may have supplied, however deeply nested."""
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, list | tuple):
        return [_bounded(item) for item in value[:_MAX_ITEMS]]
    if isinstance(value, dict):
        return {str(k)[:_MAX_NAME]: _bounded(v) for k, v in list(value.items())[:_MAX_ITEMS]}
    return value


def prepare_event(
    action: str,
    *,
    policy_version: str,
    meta: RequestMeta | None,
    caller: Caller | None,
    actor: str | None,
    dataset: str | None,
    module: str | None,
    decision: str | None,
    reasons: tuple[str, ...] | list[str],
    details: Mapping[str, Any],
) -> Prepared:
    """Build an event (stamped now) without appending it."""
    moment = datetime.now(UTC)
    event: dict[str, Any] = {k: _bounded(v) for k, v in details.items()}
    event.update(
        {
            "ts": moment.isoformat(),
            "request_id": _clip(meta.request_id, _MAX_NAME) if meta else None,
            "actor": _clip(caller.name if caller else actor, _MAX_NAME),
            "actor_kind": _clip(caller.kind, 16) if caller else None,
            "actor_org": _clip(caller.org, _MAX_NAME) if caller else None,
            "action": action[:32],
            "dataset": _clip(dataset, _MAX_NAME),
            "module": _clip(module, _MAX_NAME),
            "decision": _clip(decision, 16),
            "reasons": [_clip(r) for r in list(reasons)[:_MAX_ITEMS]],
            "policy_version": policy_version,
            "client": _clip(meta.client) if meta else None,
            "user_agent": _clip(meta.user_agent) if meta else None,
        }
    )
    return Prepared(event, moment)
