"""Principals, orgs and API keys: creation, key issue and revocation, authentication.

A token is ``kl_<key id>_<secret>``. Only SHA-256 of the secret is stored; the secret
is 256 random bits, so a plain hash cannot be brute-forced and no slow KDF is needed
on the request path.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.access.key_versions import FIRST_VERSION
from gateway.state.database import (
    VERSION_NAMES,
    bump_version,
    pooled_connection,
    write_transaction,
)
from gateway.state.models import ApiKey, Org, Principal, Version

KINDS = ("employee", "alumni", "partner", "officer", "admin", "service")
STATUSES = ("active", "departed", "suspended")
TOKEN = re.compile(r"^kl_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


class PrincipalError(ValueError):
    """A principal or key operation was refused; the message says why."""


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal behind a request."""

    id: int
    name: str
    kind: str
    status: str
    org: str | None
    org_status: str | None
    key_id: str | None = None
    # The state versions read in the same query as the key: decisions cached under
    # older versions are never used for this request.
    versions: tuple[int, ...] | None = None
    # The current pseudonym key version, read in the same query (None: not read).
    key_version: int | None = None

    def version(self, name: str) -> int | None:
        """The state version ``name`` as read with the key (None: not read)."""
        return None if self.versions is None else self.versions[VERSION_NAMES.index(name)]

    @property
    def subjects(self) -> tuple[str, ...]:
        return (f"user:{self.name}",) + ((f"org:{self.org}",) if self.org else ())

    @property
    def recipient(self) -> str:
        """Whom pseudonyms are derived for: the org for partners (so one team can join
        and collaborate), the individual otherwise."""
        if self.kind == "partner" and self.org:
            return f"org:{self.org}"
        return f"user:{self.name}"


def now() -> datetime:
    return datetime.now(UTC)


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def add_principal(
    engine: Engine,
    *,
    name: str,
    kind: str,
    org: str | None = None,
    status: str = "active",
    department: str | None = None,
    org_admin: bool = False,
) -> int:
    if not NAME.match(name):
        raise PrincipalError(f"principal name {name!r} must match {NAME.pattern}")
    if kind not in KINDS:
        raise PrincipalError(f"kind must be one of {', '.join(KINDS)}")
    if status not in STATUSES:
        raise PrincipalError(f"status must be one of {', '.join(STATUSES)}")
    if kind == "partner" and not org:
        raise PrincipalError("a partner principal needs an org")
    if org_admin and kind != "partner":
        raise PrincipalError("only a partner can be an org admin")
    with write_transaction(engine) as conn:
        if org and conn.scalar(select(Org.name).where(Org.name == org)) is None:
            conn.execute(insert(Org).values(name=org, status="active", created_at=now()))
        try:
            result = conn.execute(
                insert(Principal).values(
                    name=name,
                    kind=kind,
                    org=org,
                    status=status,
                    department=department,
                    org_admin=org_admin,
                    created_at=now(),
                )
            )
        except IntegrityError as exc:
            raise PrincipalError(f"principal {name!r} already exists") from exc
        bump_version(conn, "principals")
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def set_status(engine: Engine, name: str, status: str) -> None:
    if status not in STATUSES:
        raise PrincipalError(f"status must be one of {', '.join(STATUSES)}")
    with write_transaction(engine) as conn:
        done = conn.execute(update(Principal).where(Principal.name == name).values(status=status))
        if done.rowcount == 0:
            raise PrincipalError(f"no principal named {name!r}")
        bump_version(conn, "principals")


def issue_key(engine: Engine, name: str, *, expires_at: datetime | None = None) -> tuple[str, str]:
    """Create an API key for ``name``, valid until ``expires_at`` if given; returns
    (key id, token). The token is shown once."""
    key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    secret = secrets.token_urlsafe(32)
    with write_transaction(engine) as conn:
        principal_id = conn.scalar(select(Principal.id).where(Principal.name == name))
        if principal_id is None:
            raise PrincipalError(f"no principal named {name!r}")
        conn.execute(
            insert(ApiKey).values(
                key_id=key_id,
                principal_id=principal_id,
                secret_hash=_hash_secret(secret),
                created_at=now(),
                expires_at=expires_at,
            )
        )
    return key_id, f"kl_{key_id}_{secret}"


def revoke_key(engine: Engine, key_id: str) -> None:
    with write_transaction(engine) as conn:
        done = conn.execute(
            update(ApiKey)
            .where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now())
        )
        if done.rowcount == 0:
            raise PrincipalError(f"no active key {key_id!r}")
        bump_version(conn, "principals")


def key_id_of(token: str) -> str | None:
    """The public part of a well-formed token (safe to log); None when malformed."""
    match = TOKEN.match(token)
    return match.group(1) if match else None


@functools.cache
def _authentication_sql(paramstyle: str) -> str:
    # Built once per driver parameter style: the text is fixed.
    mark = "%s" if paramstyle in ("format", "pyformat") else "?"
    versions = ", ".join(
        f"(SELECT value FROM versions WHERE name = '{name}')" for name in VERSION_NAMES
    )
    return (
        "SELECT k.secret_hash, k.revoked_at, p.id, p.name, p.kind, p.status, p.org, o.status, "
        f"(SELECT max(version) FROM pseudonym_keys), {versions}, k.expires_at "
        "FROM api_keys k JOIN principals p ON p.id = k.principal_id "
        f"LEFT JOIN orgs o ON o.name = p.org WHERE k.key_id = {mark}"
    )


def authenticate(
    engine: Engine,
    token: str,
    *,
    connection: Callable[[], AbstractContextManager[Any]] | None = None,
) -> Caller | str:
    """The caller behind ``token``, or a short reason why it is refused.

    Read from the database on every request: a revocation or suspension applies to the
    very next request, with no cache to outlive it. The same query reads the state
    versions and the current pseudonym key version, so deciding and transforming the
    request need no further round trip. It runs on the driver directly: building and
    compiling a SQLAlchemy statement per request costs several times the query.
    ``connection`` lends the driver connection to read on (default: one from the pool);
    the read ends its own transaction."""
    match = TOKEN.match(token)
    if match is None:
        return "malformed token"
    key_id, secret = match.groups()
    with (connection or functools.partial(pooled_connection, engine))() as raw:
        cursor = raw.cursor()
        try:
            cursor.execute(_authentication_sql(engine.dialect.paramstyle), (key_id,))
            row = cursor.fetchone()
        finally:
            cursor.close()
    if row is None:
        return "unknown key"
    secret_hash, revoked_at, pid, name, kind, status, org, org_status, key_version = row[:9]
    if not hmac.compare_digest(secret_hash, _hash_secret(secret)):
        return "wrong secret"
    if revoked_at is not None:
        return "revoked key"
    if _expired(row[-1]):
        return "expired key"
    if status != "active":
        return f"principal is {status}"
    return Caller(
        id=pid,
        name=name,
        kind=kind,
        status=status,
        org=org,
        org_status=org_status,
        key_id=key_id,
        versions=tuple(int(v or 0) for v in row[9:-1]),
        key_version=int(key_version) if key_version is not None else FIRST_VERSION,
    )


def _expired(expires_at: datetime | str | None) -> bool:
    if expires_at is None:
        return False
    # The driver is read directly: SQLite hands back the stored text.
    moment = expires_at if isinstance(expires_at, datetime) else datetime.fromisoformat(expires_at)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) <= now()


def caller_by_name(engine: Engine, name: str) -> Caller | None:
    """The principal ``name`` as a caller (for explaining someone else's access)."""
    versions = [
        select(Version.value).where(Version.name == v).scalar_subquery() for v in VERSION_NAMES
    ]
    query = (
        select(
            Principal.id,
            Principal.name,
            Principal.kind,
            Principal.status,
            Principal.org,
            Org.status,
            *versions,
        )
        .outerjoin(Org, Org.name == Principal.org)
        .where(Principal.name == name)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    pid, pname, kind, status, org, org_status = row[:6]
    return Caller(
        id=pid,
        name=pname,
        kind=kind,
        status=status,
        org=org,
        org_status=org_status,
        versions=tuple(int(v or 0) for v in row[6:]),
    )


def list_principals(engine: Engine) -> list[dict[str, Any]]:
    """Every principal with its org's status and its live key count, by name."""
    table = Principal.__table__
    with engine.connect() as conn:
        orgs = {o.name: o.status for o in conn.execute(select(Org.name, Org.status)).all()}
        live: dict[int, int] = {}
        for principal_id in conn.scalars(
            select(ApiKey.principal_id).where(ApiKey.revoked_at.is_(None))
        ):
            live[principal_id] = live.get(principal_id, 0) + 1
        rows = conn.execute(select(table).order_by(table.c.name)).all()
    return [
        {
            "name": row.name,
            "kind": row.kind,
            "status": row.status,
            "org": row.org,
            "org_status": orgs.get(row.org) if row.org else None,
            "department": row.department,
            "live_keys": live.get(row.id, 0),
        }
        for row in rows
    ]
