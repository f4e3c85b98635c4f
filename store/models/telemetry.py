"""Monitoring data that exports ship: inference logs and drift metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigIntPK, JSONType, utcnow


class InferenceLog(Base):
    __tablename__ = "inference_logs"
    __table_args__ = (
        Index("ix_inference_logs_org_model_ts", "organization_id", "model", "timestamp"),
        # Exports and listings read keyset pages ("organization_id = ? AND id > ? ORDER BY id"); without
        # it SQLite sorts all of an organization's rows for every page (added by migration 0004).
        Index("ix_inference_logs_organization_id_id", "organization_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(100))
    timestamp: Mapped[datetime]
    request_id: Mapped[str | None] = mapped_column(String(200))
    features: Mapped[dict[str, Any]]
    prediction: Mapped[Any] = mapped_column(JSONType)
    label: Mapped[Any | None] = mapped_column(JSONType, nullable=True)
    latency_ms: Mapped[float | None]
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)


class DriftMetric(Base):
    __tablename__ = "drift_metrics"
    __table_args__ = (
        Index("ix_drift_metrics_org_model_feature", "organization_id", "model", "feature", "computed_at"),
        Index("ix_drift_metrics_organization_id_id", "organization_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[str | None] = mapped_column(String(64))
    check_id: Mapped[str | None] = mapped_column(String(40), index=True)
    model: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(100))
    feature: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(16))
    value: Mapped[float]
    threshold: Mapped[float]
    drifted: Mapped[bool]
    p_value: Mapped[float | None]
    reference_from: Mapped[datetime]
    reference_to: Mapped[datetime]
    current_from: Mapped[datetime]
    current_to: Mapped[datetime]
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
