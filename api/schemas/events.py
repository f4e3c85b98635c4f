"""Event intake bodies and the event catalog as the API shows it."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError

from api.errors import validation_problem
from api.schemas.common import ProjectId, StrictModel, serialised_at_most
from api.schemas.webhooks import PublishableEventType
from store.event_catalog import BY_TYPE, EventType

EVENT_DATA_MAX_BYTES = 256 * 1024
EXAMPLE_ORGANIZATION = "acme"


class EventIn(StrictModel):
    type: PublishableEventType = Field(
        description="What happened; webhook.disabled and delivery.exhausted are ModelPulse's own and cannot be "
        "published."
    )
    project_id: ProjectId | None = None
    data: Annotated[dict[str, Any], *serialised_at_most(EVENT_DATA_MAX_BYTES)] = Field(
        default_factory=dict,
        description="Event-specific data, valid against its type's schema (GET .../event-types): at most "
        "256 KiB serialised as JSON.",
    )


def check_event_data(body: EventIn) -> None:
    """422 naming the field (``data.model``) when ``data`` does not fit its type's schema."""
    try:
        BY_TYPE[body.type].data.model_validate(body.data)
    except ValidationError as error:
        raise validation_problem(error, prefix=("data",)) from None


class EventAccepted(BaseModel):
    id: str = Field(description="evt_...: the `webhook-id` every delivery of this event carries.")


class EventTypeOut(BaseModel):
    type: str
    title: str
    description: str
    data_schema: dict[str, Any] = Field(description="The JSON Schema (2020-12) of the event's `data`.")
    example: dict[str, Any] = Field(description="A whole event, as a standard-format webhook receives it.")
    severity: str = Field(description="The severity Slack, Teams and PagerDuty show it with by default.")
    subscribable: bool = Field(description="Webhooks may list it in `events`.")
    publishable: bool = Field(description="POST .../events accepts it.")
    operational: bool = Field(description="About a webhook; never delivered to the webhook it is about.")


class EventTypes(BaseModel):
    items: list[EventTypeOut]


def example_event(entry: EventType) -> dict[str, Any]:
    """A whole event of this type as its standard-format receivers get it."""
    return {
        "id": "evt_01jdx3k8v5c8m2y7q4n6t9w0ab",
        "type": entry.type,
        "timestamp": "2026-11-02T10:00:02.512Z",
        "organization_id": EXAMPLE_ORGANIZATION,
        "project_id": None,
        "data": entry.example,
    }


def event_type_out(entry: EventType) -> EventTypeOut:
    return EventTypeOut(
        type=entry.type,
        title=entry.title,
        description=entry.description,
        data_schema=entry.data_schema(),
        example=example_event(entry),
        severity=entry.severity,
        subscribable=entry.subscribable,
        publishable=entry.publishable,
        operational=entry.operational,
    )
