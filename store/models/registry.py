"""What ModelPulse knows about registries: monitored model versions, endpoint status history, sync state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigIntPK, JSONType, utcnow


class MonitoredModel(Base):
    """One version of a model that ModelPulse monitors, as the registry identifies it."""

    __tablename__ = "monitored_models"
    __table_args__ = (
        UniqueConstraint("integration_id", "name", "version"),
        Index("ix_monitored_models_integration_id_name", "integration_id", "name"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # mm_<ulid>
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    project_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(500))
    version: Mapped[str] = mapped_column(String(200))
    # The platform's own handle: MLflow "models:/name/3", a SageMaker ARN, a Vertex resource name.
    external_id: Mapped[str] = mapped_column(String(1000))
    # "api" (registered through ModelPulse), "push" (the platform told us: an MLflow webhook, an
    # EventBridge event) or "sync" (found on the platform by the registry sync).
    source: Mapped[str] = mapped_column(String(16))
    # The Prefect flow run that recorded it (register-model or sync-registry), for status lookups.
    flow_run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The version's aliases and tags as last reported (push events as they come, the sync as it finds).
    aliases: Mapped[list[str]] = mapped_column(JSONType, default=list)
    tags: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # When aliases/tags were last written: a sync whose read of the platform started earlier leaves
    # them alone, so a slow sync never overwrites a newer push with what it read before.
    labels_updated_at: Mapped[datetime | None]


class InboundReceipt(Base):
    """One inbound push delivery taken (an MLflow delivery id, an EventBridge event id).

    The primary key is the replay and duplicate guard shared by every API process: a delivery id
    seen again is answered and ignored. Rows are pruned once no retry or replay can still come.
    """

    __tablename__ = "inbound_receipts"
    __table_args__ = (Index("ix_inbound_receipts_received_at", "received_at"),)

    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    receipt_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class EndpointStatusChange(Base):
    """A change of an endpoint's status (or of what it serves), as the endpoint monitor observed it."""

    __tablename__ = "endpoint_status_changes"
    __table_args__ = (Index("ix_endpoint_status_changes_integration_endpoint", "integration_id", "endpoint_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    # The platform's own id: a SageMaker endpoint ARN, a Vertex AI endpoint resource name.
    endpoint_id: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(64))
    # What was served at that moment: variants / deployed models with versions and traffic.
    deployments: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    observed_at: Mapped[datetime] = mapped_column(default=utcnow)


class RegistrySyncState(Base):
    """The outcome of the last registry sync of one integration (one row per integration)."""

    __tablename__ = "registry_sync_states"

    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True)
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_status: Mapped[str | None] = mapped_column(String(16))  # "succeeded" | "failed"
    last_error: Mapped[str | None] = mapped_column(String(2000))
    versions_recorded: Mapped[int] = mapped_column(default=0)
