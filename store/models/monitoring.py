"""Monitoring records: drift checks, monitors, threshold rules with their episode state, recommendations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Double, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, Timestamps, utcnow


class DriftCheck(Base):
    """One comparison of a model's current window of inference logs against its reference window.

    The per-feature results are ``drift_metrics`` rows carrying this check's id.
    """

    __tablename__ = "drift_checks"
    __table_args__ = (Index("ix_drift_checks_org_model_created", "organization_id", "model", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # chk_<ulid>
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(100))
    method: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[float | None] = mapped_column(Double)
    # Feature names asked for; null means every feature found in the windows.
    features: Mapped[list[str] | None] = mapped_column(default=None)
    reference_from: Mapped[datetime]
    reference_to: Mapped[datetime]
    current_from: Mapped[datetime]
    current_to: Mapped[datetime]
    monitor_id: Mapped[str | None] = mapped_column(String(40))
    # pending -> completed | failed | no_data
    status: Mapped[str] = mapped_column(String(16), default="pending")
    status_detail: Mapped[str | None] = mapped_column(String(2000))
    drifted: Mapped[bool | None]
    reference_count: Mapped[int | None]
    current_count: Mapped[int | None]
    flow_run_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]


class Monitor(Timestamps, Base):
    """A scheduled drift check of one model: the latest ``window_seconds`` against a fixed reference."""

    __tablename__ = "monitors"
    __table_args__ = (
        UniqueConstraint("organization_id", "model"),
        Index("ix_monitors_next_run_at", "next_run_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # mon_<ulid>
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(100))
    reference_from: Mapped[datetime]
    reference_to: Mapped[datetime]
    window_seconds: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[float | None] = mapped_column(Double)
    features: Mapped[list[str] | None] = mapped_column(default=None)
    schedule: Mapped[dict[str, Any]]
    enabled: Mapped[bool] = mapped_column(default=True)
    next_run_at: Mapped[datetime]
    last_run_at: Mapped[datetime | None]
    last_check_id: Mapped[str | None] = mapped_column(String(40))
    # The drift.detected event that opened the drift episode in progress (null: the last check was clean).
    drift_episode_event_id: Mapped[str | None] = mapped_column(String(40))


class Threshold(Timestamps, Base):
    """A rule ``<metric> <operator> <value>`` over one model (or every model when ``model`` is null)."""

    __tablename__ = "thresholds"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # thr_<ulid>
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(64))
    operator: Mapped[str] = mapped_column(String(2))
    value: Mapped[float] = mapped_column(Double)
    window_seconds: Mapped[int | None]
    # critical | error | warning | info: carried by threshold.breached, used by paging formats.
    severity: Mapped[str] = mapped_column(String(16), default="error", server_default="error")
    enabled: Mapped[bool] = mapped_column(default=True)


class ThresholdState(Base):
    """Where one threshold stands for one model: the open breach episode, if any.

    ``threshold.breached`` is emitted only when ``breached`` turns true, so a metric that stays above
    its threshold emits once per episode; ``consecutive_breaches`` feeds the recommendation rules.
    """

    __tablename__ = "threshold_states"
    __table_args__ = (UniqueConstraint("threshold_id", "model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    threshold_id: Mapped[str] = mapped_column(ForeignKey("thresholds.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(200))
    breached: Mapped[bool] = mapped_column(default=False)
    episode_started_at: Mapped[datetime | None]
    # The threshold.breached event that opened the episode in progress; threshold.resolved names it.
    episode_event_id: Mapped[str | None] = mapped_column(String(40))
    consecutive_breaches: Mapped[int] = mapped_column(Integer, default=0)
    last_value: Mapped[float | None] = mapped_column(Double)
    last_evaluated_at: Mapped[datetime | None]


class Recommendation(Base):
    """Advice produced by a recommendation rule (``retrain``, ``scale_endpoint``, ``add_monitor``)."""

    __tablename__ = "recommendations"
    __table_args__ = (
        # One open recommendation per kind and model: ``open_slot`` is 1 while open and null after
        # dismissal, and nulls never collide in a unique index (SQLite and PostgreSQL alike).
        UniqueConstraint("organization_id", "model", "kind", "open_slot"),
        Index("ix_recommendations_organization_id_id", "organization_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # rec_<ulid>
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(2000))
    details: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="open")
    open_slot: Mapped[int | None] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dismissed_at: Mapped[datetime | None]

