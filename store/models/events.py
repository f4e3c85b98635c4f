"""The event outbox: written in the producer's transaction, dispatched after commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, utcnow


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_organization_id_id", "organization_id", "id"),
        Index("ix_events_dispatched_at", "dispatched_at"),
        Index("ix_events_published_at", "published_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # evt_<ulid>
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[str | None] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]]
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)
    # Null until the fan-out has taken the event; the outbox sweep picks up what stays null.
    dispatched_at: Mapped[datetime | None]
    # Null until the event was emitted into Prefect's event stream (``tasks/prefect_events.py``), which the
    # dispatcher does apart from the fan-out; the retry sweep emits what stays null.
    published_at: Mapped[datetime | None]
