"""Connections to model registries (MLflow, SageMaker, Vertex AI). Secrets live in Prefect blocks."""

from __future__ import annotations

from sqlalchemy import UniqueConstraint

from store.models.base import Base
from store.models.connection import ConnectionRecord


class Integration(ConnectionRecord, Base):
    __tablename__ = "integrations"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)
