"""Small readings of a grant row shared by the grant workflow's modules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Row

from gateway.access.permissions import GrantFacts
from gateway.errors import InvalidRequest


def aware(moment: datetime | None) -> datetime | None:
    """A stored moment as UTC (SQLite hands them back naive)."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(moment: datetime | None) -> str | None:
    moment = aware(moment)
    return moment.isoformat() if moment else None


def invalid(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        f"{field}: {message}", field=field, errors=[{"field": field, "message": message}]
    )


def subject_label(row: Row[Any]) -> str:
    """``user:NAME`` or ``org:NAME``: who a grant row is for."""
    return ("user:" if row.subject_type == "principal" else "org:") + row.subject


def facts(row: Row[Any]) -> GrantFacts:
    return GrantFacts(row.subject_type, row.subject, row.module, row.requested_by)
