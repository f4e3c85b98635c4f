"""Export runs: the trigger body, run records with per-stream counters, rejected records, connection tests."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas.common import StrictModel, Timestamp
from api.schemas.exports import STREAMS, Stream

RunStatus = Literal["scheduled", "running", "completed", "completed_with_errors", "failed"]


class TriggerIn(StrictModel):
    """An empty body runs the export incrementally; any field makes it a backfill."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    streams: list[Stream] | None = Field(
        default=None, min_length=1, max_length=len(STREAMS), description="Streams to backfill."
    )
    from_: Timestamp | None = Field(default=None, alias="from", description="Backfill start (inclusive, RFC 3339).")
    to: Timestamp | None = Field(default=None, description="Backfill end (exclusive, RFC 3339).")

    @model_validator(mode="after")
    def _ordered_aware_range(self) -> TriggerIn:
        for name, value in (("from", self.from_), ("to", self.to)):
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must carry a time zone (e.g. 2026-11-01T00:00:00Z)")
        if self.from_ and self.to and self.from_ >= self.to:
            raise ValueError("from must be before to")
        return self

    @property
    def is_backfill(self) -> bool:
        return bool(self.model_fields_set)

    def backfill(self) -> dict[str, object] | None:
        """The flow's ``backfill`` parameter, or None for an incremental run."""
        if not self.is_backfill:
            return None
        return {
            "streams": self.streams,
            "from": self.from_.isoformat() if self.from_ else None,
            "to": self.to.isoformat() if self.to else None,
        }


class TriggerOut(BaseModel):
    run_id: str
    flow_run_id: str
    status: RunStatus
    status_url: str


class StreamCounters(BaseModel):
    shipped: int
    rejected: int
    retried: int


class RunOut(BaseModel):
    id: str
    export_id: str
    flow_run_id: str | None
    mode: Literal["incremental", "backfill"]
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    streams: dict[str, StreamCounters]


class RejectedOut(BaseModel):
    id: int
    stream: str
    record_id: str
    status: int | None = Field(description="The sink's status for the record (e.g. 400).")
    reason: str
    rejected_at: datetime


class CheckOut(BaseModel):
    name: str
    ok: bool
    detail: str


class ConnectionTestOut(BaseModel):
    ok: bool
    checks: list[CheckOut]
