"""Event intake bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api.schemas.common import ProjectId, StrictModel
from api.schemas.webhooks import EventType


class EventIn(StrictModel):
    type: EventType
    project_id: ProjectId | None = None
    data: dict[str, Any] = Field(default_factory=dict, description="Event-specific data.")


class EventAccepted(BaseModel):
    id: str = Field(description="evt_...: the `webhook-id` every delivery of this event carries.")
