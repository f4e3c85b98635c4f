"""Remediations: a Prefect automation that runs a deployment when an organization's event matches.

The automation lives in Prefect (``automation_id``); the row is what the API shows and what the event
publisher reads to tag each event with the remediations whose ``on`` it matches (``tasks/prefect_events.py``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, Timestamps


class Remediation(Timestamps, Base):
    __tablename__ = "remediations"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # rem_<ulid>
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # ``{"type": "drift.detected", "filter": {...} | null}``: the filter in ModelPulse's syntax (store.event_filters).
    on: Mapped[dict[str, Any]]
    deployment: Mapped[str] = mapped_column(String(400))  # "<flow name>/<deployment name>"
    parameters: Mapped[dict[str, Any]]
    automation_id: Mapped[str] = mapped_column(String(40))  # the Prefect automation's UUID
