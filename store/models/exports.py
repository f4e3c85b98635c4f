"""Export configurations (Elasticsearch, Splunk HEC, Datadog). Secrets live in Prefect blocks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, Timestamps


class Export(Timestamps, Base):
    __tablename__ = "exports"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[str | None] = mapped_column(String(64))
    config: Mapped[dict[str, Any]]
    secret_fields: Mapped[list[str]]
    streams: Mapped[list[str]]
    schedule: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    enabled: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(String(32), default="active")
    status_detail: Mapped[str | None] = mapped_column(String(2000))
