"""Export progress: one watermark per export and stream, run records with per-stream counters, and
the records a sink refused (kept with the reason, never silently dropped)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigIntPK, utcnow


class ExportWatermark(Base):
    """The id of the last record of ``stream`` the export's sink acknowledged."""

    __tablename__ = "export_watermarks"

    export_id: Mapped[str] = mapped_column(
        ForeignKey("exports.id", ondelete="CASCADE"), primary_key=True
    )
    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Integer ids (inference logs, drift metrics) and evt_ ids both fit; the stream knows the type.
    position: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ExportRun(Base):
    """One execution of an export (scheduled, triggered or a backfill), tied to its Prefect flow run."""

    __tablename__ = "export_runs"
    __table_args__ = (Index("ix_export_runs_export_id_id", "export_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # xrun_<ulid>
    export_id: Mapped[str] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"))
    organization_id: Mapped[str] = mapped_column(String(64))
    flow_run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # "incremental" moves the watermarks; "backfill" re-ships a time range and leaves them alone.
    mode: Mapped[str] = mapped_column(String(16), default="incremental")
    backfill: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(32), default="scheduled")
    error: Mapped[str | None] = mapped_column(String(4000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class ExportRunStream(Base):
    """Counters of one stream within one run, moved in the same transaction as the watermark."""

    __tablename__ = "export_run_streams"

    run_id: Mapped[str] = mapped_column(ForeignKey("export_runs.id", ondelete="CASCADE"), primary_key=True)
    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    shipped: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    retried: Mapped[int] = mapped_column(Integer, default=0)


class RejectedRecord(Base):
    """A record the sink refused for good (mapping error, invalid data), with the sink's reason."""

    __tablename__ = "export_rejected_records"
    __table_args__ = (Index("ix_export_rejected_records_run_id_id", "run_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("export_runs.id", ondelete="CASCADE"))
    stream: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None]
    reason: Mapped[str] = mapped_column(String(2000))
    rejected_at: Mapped[datetime] = mapped_column(default=utcnow)
