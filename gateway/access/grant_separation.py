"""The separation rules between modules: which grant a new one would conflict with.

A principal holds the modules of their own grants and their org's; an org's grant is
held by the org and by every member. ``separation.exclusive`` names pairs of modules
never held together, ``separation.max_modules_per_principal`` caps how many one holder
may have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Row

from gateway.access.grant_rows import aware, subject_label
from gateway.access.principals import now
from gateway.config import Config
from gateway.state.models import Grant, Principal


@dataclass(frozen=True, slots=True)
class SeparationConflict:
    rule: str
    grant_id: int
    detail: str


def separation_conflict(
    conn: Connection,
    config: Config,
    subject_type: str,
    subject: str,
    module: str,
    *,
    exclude: int | None = None,
) -> SeparationConflict | None:
    """The first rule that holding ``module`` would break for ``subject``, if any."""
    rules = config.separation
    if rules.max_modules_per_principal is None and not rules.exclusive:
        return None
    active = _active_grants(conn, exclude)
    for who, subjects in _holders(conn, subject_type, subject):
        held: dict[str, int] = {}
        for g in sorted(active, key=lambda g: g.id):
            if subject_label(g) in subjects:
                held.setdefault(g.module, g.id)
        conflict = _exclusive_conflict(config, who, module, held) or _count_conflict(
            config, who, module, held
        )
        if conflict is not None:
            return conflict
    return None


def _active_grants(conn: Connection, exclude: int | None) -> list[Row[Any]]:
    at = now()
    table = Grant.__table__
    return [
        g
        for g in conn.execute(select(table).where(table.c.status == "active")).all()
        if g.id != exclude and (aware(g.expires_at) or at) > at
    ]


def _holders(conn: Connection, subject_type: str, subject: str) -> list[tuple[str, set[str]]]:
    # Who would hold the module: the principal (with their org's grants), or every
    # member of the org (each with their own grants) and the org itself.
    holders: list[tuple[str, set[str]]] = []
    if subject_type == "principal":
        org = conn.scalar(select(Principal.org).where(Principal.name == subject))
        holders.append((subject, {f"user:{subject}"} | ({f"org:{org}"} if org else set())))
    else:
        holders.append((f"org {subject}", {f"org:{subject}"}))
        for name in conn.scalars(select(Principal.name).where(Principal.org == subject)):
            holders.append((name, {f"user:{name}", f"org:{subject}"}))
    return holders


def _exclusive_conflict(
    config: Config, who: str, module: str, held: dict[str, int]
) -> SeparationConflict | None:
    for a, b in config.separation.exclusive:
        if module in (a, b):
            other = b if module == a else a
            if other in held and other != module:
                return SeparationConflict(
                    "separation.exclusive",
                    held[other],
                    f"modules {a!r} and {b!r} may not be held together "
                    f"(separation.exclusive); {who} holds {other!r} through grant "
                    f"{held[other]}",
                )
    return None


def _count_conflict(
    config: Config, who: str, module: str, held: dict[str, int]
) -> SeparationConflict | None:
    limit = config.separation.max_modules_per_principal
    if limit is not None and module not in held and len(held) + 1 > limit:
        first = min(held.values())
        return SeparationConflict(
            "separation.max_modules_per_principal",
            first,
            f"{who} already holds {len(held)} module(s) "
            f"({', '.join(sorted(held))}); separation.max_modules_per_principal is "
            f"{limit} (conflicting grant {first})",
        )
    return None
