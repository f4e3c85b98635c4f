"""Silences (Alertmanager's model): for a while, an organization's events that match are sent to no webhook.

A silence's ``matchers`` are a webhook filter (``store.event_filters``); an event is silenced when it
matches and its time falls in ``[starts_at, ends_at)``. Silences are never deleted through the API:
expiring one moves its ``ends_at`` to now, so the history's ``silence_id`` always names a silence that
can be read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, Timestamps


class Silence(Timestamps, Base):
    __tablename__ = "silences"
    # The dispatcher loads an organization's silences that end after a moment.
    __table_args__ = (Index("ix_silences_organization_id_ends_at", "organization_id", "ends_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # sil_<ulid>
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    matchers: Mapped[dict[str, Any]]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    comment: Mapped[str] = mapped_column(String(1000))
    created_by: Mapped[str] = mapped_column(String(200))
