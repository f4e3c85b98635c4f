"""Connections to model registries (MLflow, SageMaker, Vertex AI). Secrets live in Prefect blocks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped

from store.models.base import Base
from store.models.connection import ConnectionRecord


class Integration(ConnectionRecord, Base):
    __tablename__ = "integrations"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    # Push subscription on the platform, when ``config.push_events`` is on: for MLflow the webhook's
    # id and last known status (``mlflow_webhook_id``, ``mlflow_webhook_status``, ``checked_at``).
    push_state: Mapped[dict[str, Any] | None]
