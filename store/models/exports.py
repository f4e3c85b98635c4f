"""Export configurations (Elasticsearch, Splunk HEC, Datadog). Secrets live in Prefect blocks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base
from store.models.connection import ConnectionRecord


class Export(ConnectionRecord, Base):
    __tablename__ = "exports"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    streams: Mapped[list[str]]
    schedule: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    enabled: Mapped[bool] = mapped_column(default=True)
