"""While an answer is delivered, keep asking whether its reader may still receive it.

Revocation, offboarding and suspension bump a version row in the state database
(``versions``), whichever gateway process made the change. A delivered read compares
those versions with the ones it was decided under, one small query per check; only
when they moved does it look again at the key, the principal, its org and the decision.

Time changes a decision without moving any version: a grant's time window closes, the
grant expires, or the reader's API key expires. Windows are set in whole minutes, so the
read is also decided again at each whole minute, and at the grant's or the key's expiry
when that comes first.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, select

from gateway.access.decisions import Decider
from gateway.access.principals import Caller
from gateway.state.database import read_versions
from gateway.state.models import ApiKey, Grant, Org, Principal
from policies import Profile


def next_minute(at: datetime) -> datetime:
    """The whole minute after ``at``: the earliest a time window can open or close."""
    return at.replace(second=0, microsecond=0) + timedelta(minutes=1)


@dataclass(eq=False)
class ReadWatch:
    engine: Engine
    decider: Decider
    _: KW_ONLY
    caller: Caller
    dataset: str
    purpose: str | None
    profile: Profile
    grant_id: int
    # The versions the read was last decided under.
    _versions: tuple[int, ...] | None = field(init=False)
    # When the decision is due again though no version moved (see next_decision):
    # at the first check, as a minute may have ended since the read was decided.
    _due: datetime = field(init=False, default=datetime.min.replace(tzinfo=UTC))
    _expires: datetime | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._versions = self.caller.versions

    def check(self) -> str | None:
        """Why the read must stop now, or None while it may go on."""
        now = datetime.now(UTC)
        with self.engine.connect() as conn:
            versions = read_versions(conn)
            if self._expires is None:
                self._expires = self._expiry(conn)
            if versions == self._versions and now < self._due:
                return None
            row = conn.execute(
                select(
                    ApiKey.revoked_at,
                    Principal.status,
                    Org.status,
                    Principal.kind,
                    ApiKey.expires_at,
                )
                .join(Principal, Principal.id == ApiKey.principal_id)
                .outerjoin(Org, Org.name == Principal.org)
                .where(ApiKey.key_id == self.caller.key_id)
            ).first()
        if self.caller.key_id is not None:
            if row is None or row[0] is not None:
                return "the reader's API key was revoked during the read"
            if row[4] is not None and _aware(row[4]) <= now:
                return "the reader's API key expired during the read"
            if row[1] != "active":
                return f"the reader became {row[1]} during the read"
            if row[2] is not None and row[2] != "active":
                return f"the reader's org became {row[2]} during the read"
        kind = row[3] if row is not None else self.caller.kind
        return self._decided_again(versions, kind, now)

    def _expiry(self, conn: Connection) -> datetime:
        """The first moment the grant or the reader's key expires."""
        grant = conn.execute(select(Grant.expires_at).where(Grant.id == self.grant_id)).scalar()
        if grant is None:
            # A read decided under a grant the state does not hold: decide again now.
            return datetime.min.replace(tzinfo=UTC)
        key = None
        if self.caller.key_id is not None:
            key = conn.execute(
                select(ApiKey.expires_at).where(ApiKey.key_id == self.caller.key_id)
            ).scalar()
        return min(_aware(grant), _aware(key)) if key is not None else _aware(grant)

    def next_decision(self, now: datetime) -> datetime:
        """When a read allowed at ``now`` is decided again, whatever the versions say."""
        due = next_minute(now)
        return due if self._expires is None else min(due, max(self._expires, now))

    def _decided_again(self, versions: tuple[int, ...], kind: str, now: datetime) -> str | None:
        # Offboarding changes the kind (an employee becomes alumni): decide as it is now.
        decision = self.decider.decide(
            caller=replace(self.caller, kind=kind, versions=versions),
            dataset=self.dataset,
            at=now,
            purpose=self.purpose,
            profile=self.profile,
        )
        if not decision.allowed or decision.obligations is None:
            return "the read is no longer allowed: " + (decision.reasons or ("denied",))[0]
        if decision.obligations.grant_id != self.grant_id:
            return "the grant the read was decided under no longer applies"
        self._versions = versions
        self._due = self.next_decision(now)
        return None


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; the state stores UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
