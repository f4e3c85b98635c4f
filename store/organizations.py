"""Organizations and API keys. A key is shown once; only its SHA-256 is stored."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.ids import new_id
from store.models import ApiKey, Organization

KEY_PREFIX = "mpk_"
ORGANIZATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast unsalted hash is enough to make a leaked table useless.
    return hashlib.sha256(key.encode()).hexdigest()


def ensure_organization(session: Session, organization_id: str) -> Organization:
    """Return the organization, creating it when missing."""
    if not ORGANIZATION_ID.match(organization_id):
        raise ValueError(
            "an organization id is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    organization = session.get(Organization, organization_id)
    if organization is None:
        organization = Organization(id=organization_id)
        session.add(organization)
        session.flush()
    return organization


def create_api_key(session: Session, organization_id: str) -> str:
    """Create a key for the organization (created if missing) and return the plaintext key."""
    ensure_organization(session, organization_id)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            id=new_id("key"),
            organization_id=organization_id,
            key_hash=hash_key(key),
            prefix=key[:12],
        )
    )
    return key


def organization_for_key(session: Session, key: str) -> str | None:
    """The organization a valid, unrevoked key belongs to, or ``None``."""
    return session.scalar(
        select(ApiKey.organization_id).where(
            ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)
        )
    )
