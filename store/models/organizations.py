"""Tenancy: organizations, their API keys (stored as SHA-256 hashes only) and the keys' request counts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, utcnow


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A new random token for every silence created or expired (``store.silences``); NULL: it never had one.
    # The webhook dispatcher reads it with the webhook rows and reloads the organization's silences only
    # when it changed (a token, not a counter: a database restored from a backup cannot repeat one).
    silence_set_version: Mapped[str | None] = mapped_column(String(40))


class ApiKey(Base):
    """A bearer key: its hash, and its lifecycle (who created and revoked it, when, until when it is valid)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Keys made before the lifecycle was recorded have no creator.
    created_by: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(200))
    # Written at most about once a minute per key (see api/auth.py), so it is a minute-granular "last seen".
    last_used_at: Mapped[datetime | None]
    # admin | publisher | viewer: what the key may do (api/permissions.py). Keys made before roles are admins.
    role: Mapped[str] = mapped_column(String(16), default="admin", server_default=text("'admin'"))


class ApiKeyRequestCount(Base):
    """How many requests a key made in one fixed one-minute window, summed over every API process.

    The rate limit's shared counter. No foreign key: rows live a minute or two and are pruned by the
    API processes themselves, and a counter must never fail a request.
    """

    __tablename__ = "api_key_request_counts"

    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Unix seconds of the window's start (a multiple of 60): an integer compares the same on every backend.
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    requests: Mapped[int] = mapped_column(Integer)
