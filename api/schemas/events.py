"""Event intake bodies."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from api.schemas.common import ProjectId, StrictModel, serialised_at_most
from api.schemas.webhooks import EventType

EVENT_DATA_MAX_BYTES = 256 * 1024


class EventIn(StrictModel):
    type: EventType
    project_id: ProjectId | None = None
    data: Annotated[dict[str, Any], *serialised_at_most(EVENT_DATA_MAX_BYTES)] = Field(
        default_factory=dict, description="Event-specific data: at most 256 KiB serialised as JSON."
    )


class EventAccepted(BaseModel):
    id: str = Field(description="evt_...: the `webhook-id` every delivery of this event carries.")
