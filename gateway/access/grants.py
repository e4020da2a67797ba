"""Grants: who may read which dataset (or whole module), under which profile, until when."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, false, insert, or_, select, update
from sqlalchemy.engine import Connection

from gateway.access.principals import now
from gateway.config import Config
from gateway.state.database import bump_version, write_transaction
from gateway.state.models import Grant, Org, Principal
from policies import PROFILE_ORDER

STATUSES = ("requested", "approved", "active", "expired", "revoked", "denied")


class GrantError(ValueError):
    """A grant operation was refused; the message names the field or rule."""


@dataclass(frozen=True, slots=True)
class GrantRecord:
    id: int
    subject: str  # "user:<name>" or "org:<name>"
    module: str
    dataset: str | None
    profile: str
    purpose: str | None
    approvals: int
    columns: tuple[str, ...] | None
    row_filter: tuple[dict[str, Any], ...]
    row_cap: int | None
    expires_at: datetime
    window: dict[str, Any] | None = None
    # A time-boxed exception approved by an admin and an officer together: it does not
    # count against the module-separation rules it was granted to bypass.
    break_glass: bool = False

    def covers(self, module: str, dataset: str) -> bool:
        return self.module == module and self.dataset in (None, dataset)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject": self.subject,
            "module": self.module,
            "dataset": self.dataset,
            "profile": self.profile,
            "purpose": self.purpose,
            "approvals": self.approvals,
            "columns": list(self.columns) if self.columns else None,
            "row_filter": list(self.row_filter) or None,
            "row_cap": self.row_cap,
            "expires_at": self.expires_at.isoformat(),
            "window": self.window,
        }


def add_grant(
    engine: Engine,
    config: Config,
    *,
    subject_type: str,
    subject: str,
    profile: str,
    days: int,
    created_by: str,
    dataset: str | None = None,
    module: str | None = None,
    purpose: str | None = None,
    approvals: int = 0,
    columns: list[str] | None = None,
    row_filter: list[dict[str, Any]] | None = None,
    row_cap: int | None = None,
    window: dict[str, Any] | None = None,
    status: str = "active",
) -> int:
    """Record a grant directly (administrative path; requests and approvals build on it)."""
    module = _checked_target(
        config,
        subject_type=subject_type,
        profile=profile,
        dataset=dataset,
        module=module,
        columns=columns,
        days=days,
        status=status,
    )
    created = now()
    with write_transaction(engine) as conn:
        table = Principal.name if subject_type == "principal" else Org.name
        if conn.scalar(select(table).where(table == subject)) is None:
            raise GrantError(f"unknown {subject_type} {subject!r}")
        result = conn.execute(
            insert(Grant).values(
                subject_type=subject_type,
                subject=subject,
                module=module,
                dataset=dataset,
                profile=profile,
                purpose=purpose,
                status=status,
                columns=columns,
                row_filter=row_filter,
                row_cap=row_cap,
                window=window,
                approvals=approvals,
                created_by=created_by,
                created_at=created,
                expires_at=created + timedelta(days=days),
            )
        )
        bump_version(conn, "grants")
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def _checked_target(
    config: Config,
    *,
    subject_type: str,
    profile: str,
    dataset: str | None,
    module: str | None,
    columns: list[str] | None,
    days: int,
    status: str,
) -> str:
    """Refuse terms the configuration does not know; the module the grant is on."""
    if subject_type not in ("principal", "org"):
        raise GrantError("subject_type must be 'principal' or 'org'")
    if profile not in PROFILE_ORDER:
        raise GrantError(f"profile must be one of {', '.join(PROFILE_ORDER)}")
    if dataset is not None:
        if dataset not in config.datasets:
            raise GrantError(f"unknown dataset {dataset!r}")
        ds_module = config.datasets[dataset].module
        if module is not None and module != ds_module:
            raise GrantError(f"dataset {dataset!r} belongs to module {ds_module!r}, not {module!r}")
        module = ds_module
        if columns:
            unknown = sorted(set(columns) - set(config.datasets[dataset].columns))
            if unknown:
                raise GrantError(f"unknown column(s) in grant: {', '.join(unknown)}")
    if module is None or module not in config.modules:
        raise GrantError(f"unknown module {module!r}")
    if not 0 < days <= 3660:
        raise GrantError("days must be between 1 and 3660")
    if status not in STATUSES:
        raise GrantError(f"status must be one of {', '.join(STATUSES)}")
    return module


def revoke_grant(engine: Engine, grant_id: int) -> None:
    with engine.begin() as conn:
        done = conn.execute(
            update(Grant)
            .where(Grant.id == grant_id, Grant.status == "active")
            .values(status="revoked")
        )
        if done.rowcount == 0:
            raise GrantError(f"no active grant {grant_id}")
        bump_version(conn, "grants")


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes for timezone-aware columns; we only ever store UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def active_grants(
    conn: Connection, subjects: Iterable[tuple[str, str]] | None = None
) -> list[GrantRecord]:
    """The active grants, in id order (the order of their lines, which decides which
    line explains a decision); ``subjects`` as (subject_type, subject) pairs narrows
    them to those subjects."""
    table = Grant.__table__
    query = select(table).where(table.c.status == "active").order_by(table.c.id)
    if subjects is not None:
        by_type: dict[str, list[str]] = defaultdict(list)
        for subject_type, subject in subjects:
            by_type[subject_type].append(subject)
        query = query.where(
            or_(
                false(),
                *(
                    and_(table.c.subject_type == kind, table.c.subject.in_(names))
                    for kind, names in by_type.items()
                ),
            )
        )
    rows = conn.execute(query).all()
    return [
        GrantRecord(
            id=g.id,
            subject=("user:" if g.subject_type == "principal" else "org:") + g.subject,
            module=g.module,
            dataset=g.dataset,
            profile=g.profile,
            purpose=g.purpose,
            approvals=g.approvals,
            columns=tuple(g.columns) if g.columns else None,
            row_filter=tuple(g.row_filter or ()),
            row_cap=g.row_cap,
            expires_at=_aware(g.expires_at),
            window=g.window,
            break_glass=g.break_glass_hours is not None,
        )
        for g in rows
    ]


def _expiry(grant: GrantRecord) -> tuple[datetime, int, str]:
    return (grant.expires_at, grant.id, grant.subject)


class GrantIndex:
    """Active grants by subject, immutable: ``replaced`` builds the next one beside it."""

    def __init__(self, grants: Iterable[GrantRecord]) -> None:
        by_subject: dict[str, list[GrantRecord]] = defaultdict(list)
        for grant in grants:
            by_subject[grant.subject].append(grant)
        self._by_subject = {subject: tuple(held) for subject, held in by_subject.items()}
        # Every grant's expiry, in order: the next one ends the snapshot's validity,
        # and those passed since name the subjects whose separation denies may change.
        self._expiries = sorted(_expiry(g) for held in self._by_subject.values() for g in held)

    def __len__(self) -> int:
        return len(self._expiries)

    @property
    def grants(self) -> list[GrantRecord]:
        return [g for held in self._by_subject.values() for g in held]

    @property
    def subjects(self) -> Iterable[str]:
        return self._by_subject.keys()

    def held_by(self, subject: str) -> tuple[GrantRecord, ...]:
        return self._by_subject.get(subject, ())

    def replaced(self, held: Mapping[str, Iterable[GrantRecord]]) -> GrantIndex:
        """A new index in which each subject of ``held`` holds exactly those grants; this
        one is left as it is, for the decisions still reading it."""
        index = GrantIndex(())
        index._by_subject = dict(self._by_subject)
        expiries = list(self._expiries)
        for subject, grants in held.items():
            for grant in index._by_subject.pop(subject, ()):
                expiries.pop(bisect.bisect_left(expiries, _expiry(grant)))
            kept = tuple(grants)
            if kept:
                index._by_subject[subject] = kept
                for grant in kept:
                    bisect.insort(expiries, _expiry(grant))
        index._expiries = expiries
        return index

    def next_expiry(self, at: datetime) -> datetime | None:
        """The earliest expiry after ``at``."""
        i = bisect.bisect_right(self._expiries, at, key=lambda e: e[0])
        return self._expiries[i][0] if i < len(self._expiries) else None

    def expiring(self, after: datetime, until: datetime) -> set[str]:
        """The subjects holding a grant that expires after ``after``, up to ``until``."""
        start = bisect.bisect_right(self._expiries, after, key=lambda e: e[0])
        end = bisect.bisect_right(self._expiries, until, key=lambda e: e[0])
        return {subject for _, _, subject in self._expiries[start:end]}

    def for_request(self, subjects: Iterable[str], module: str, dataset: str) -> list[GrantRecord]:
        return [
            g for s in subjects for g in self._by_subject.get(s, ()) if g.covers(module, dataset)
        ]

    def modules_held(self, subjects: Iterable[str], at: datetime) -> set[str]:
        """Modules held through ordinary grants; break-glass exceptions do not count."""
        return {
            g.module
            for s in subjects
            for g in self._by_subject.get(s, ())
            if g.expires_at > at and not g.break_glass
        }
