"""Organizations and API keys. A key is shown once; only its SHA-256 is stored.

A key's lifecycle: created (by whom, with which role, optionally until when), used (``last_used_at``,
minute-granular), revoked (by whom, when). A key is *active* until it is revoked or its ``expires_at``
passes. Its role (``KEY_ROLES``) says which operations it may call (``api/permissions.py``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from store.ids import new_id
from store.key_roles import DEFAULT_KEY_ROLE, KEY_ROLES
from store.models import ApiKey, Organization, utcnow

KEY_PREFIX = "mpk_"
KEY_ID_PREFIX = "key_"
ORGANIZATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ACTOR_MAX_LENGTH = 200


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast unsalted hash is enough to make a leaked table useless.
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    """What authenticating a request needs to know of a key: never its hash nor the key itself."""

    id: str
    organization_id: str
    expires_at: datetime | None
    revoked: bool
    role: str = DEFAULT_KEY_ROLE

    def status(self, now: datetime) -> str:
        """``active``, ``revoked`` or ``expired`` at ``now``."""
        return key_status(self.revoked, self.expires_at, now)


def key_status(revoked: bool, expires_at: datetime | None, now: datetime) -> str:
    if revoked:
        return "revoked"
    if expires_at is not None and expires_at <= now:
        return "expired"
    return "active"


def ensure_organization(session: Session, organization_id: str) -> Organization:
    """Return the organization, creating it when missing."""
    check_organization_id(organization_id)
    organization = session.get(Organization, organization_id)
    if organization is None:
        organization = Organization(id=organization_id)
        session.add(organization)
        session.flush()
    return organization


def check_organization_id(organization_id: str) -> None:
    """Raise ``ValueError`` unless ``organization_id`` is a well-formed organization id."""
    if not ORGANIZATION_ID.match(organization_id):
        raise ValueError(
            "an organization id is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )


def create_api_key(
    session: Session,
    organization_id: str,
    *,
    created_by: str | None = None,
    expires_at: datetime | None = None,
    role: str = DEFAULT_KEY_ROLE,
) -> str:
    """Create a key for the organization (created if missing) and return the plaintext key.

    ``created_by`` names who asked (a person, ``user@host``, or a tool); ``expires_at``, when given,
    is the moment the key stops working; ``role`` is one of ``KEY_ROLES`` (``ValueError`` otherwise).
    """
    if role not in KEY_ROLES:
        raise ValueError(f"a key's role is one of {', '.join(KEY_ROLES)}")
    ensure_organization(session, organization_id)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            id=new_id("key"),
            organization_id=organization_id,
            key_hash=hash_key(key),
            prefix=key[:12],
            created_by=created_by,
            expires_at=expires_at,
            role=role,
        )
    )
    return key


def find_key(session: Session, key_hash: str) -> KeyRecord | None:
    """The key with this hash, whatever its status, or ``None``."""
    row = session.execute(
        select(ApiKey.id, ApiKey.organization_id, ApiKey.expires_at, ApiKey.revoked_at, ApiKey.role).where(
            ApiKey.key_hash == key_hash
        )
    ).first()
    if row is None:
        return None
    return KeyRecord(
        id=row.id,
        organization_id=row.organization_id,
        expires_at=row.expires_at,
        revoked=row.revoked_at is not None,
        role=row.role,
    )


def organization_for_key(session: Session, key: str) -> str | None:
    """The organization an active (unrevoked, unexpired) key belongs to, or ``None``."""
    record = find_key(session, hash_key(key))
    if record is None or record.status(utcnow()) != "active":
        return None
    return record.organization_id


def list_api_keys(session: Session, organization_id: str) -> list[ApiKey]:
    """The organization's keys, oldest first; raises ``LookupError`` for an unknown organization."""
    if session.get(Organization, organization_id) is None:
        raise LookupError(f"no organization {organization_id!r}")
    return list(session.scalars(select(ApiKey).where(ApiKey.organization_id == organization_id).order_by(ApiKey.id)))


def get_api_key(session: Session, key_id_or_key: str) -> ApiKey | None:
    """A key by its id (``key_...``) or by the plaintext key itself (``mpk_...``)."""
    if key_id_or_key.startswith(KEY_PREFIX):
        return session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key_id_or_key)))
    if key_id_or_key.startswith(KEY_ID_PREFIX):
        return session.get(ApiKey, key_id_or_key)
    return None


def revoke_api_key(session: Session, key_id_or_key: str, revoked_by: str) -> tuple[ApiKey, bool]:
    """Revoke a key given by id or plaintext; returns the key and whether this call revoked it.

    Revoking a revoked key changes nothing (the first revocation's time and author stay). Raises
    ``LookupError`` when no key matches.
    """
    api_key = get_api_key(session, key_id_or_key)
    if api_key is None:
        raise LookupError("no API key matches")
    # A conditional UPDATE, so of two concurrent revocations exactly one is recorded.
    revoked = session.execute(
        update(ApiKey)
        .where(ApiKey.id == api_key.id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_by=revoked_by)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(api_key)
    return api_key, revoked == 1


def record_key_use(session: Session, key_id: str, at: datetime, granularity: timedelta) -> bool:
    """Set the key's ``last_used_at`` to ``at`` unless it was set within ``granularity`` before;
    returns whether the row was written (so several processes write it at most about once per period)."""
    written = session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= at - granularity),
        )
        .values(last_used_at=at)
        .execution_options(synchronize_session=False)
    ).rowcount
    return written == 1
