"""Webhook delivery history, redelivery, test events and secret rotation."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.common import PageQuery
from store.models.deliveries import DELIVERY_STATUSES

DeliveryStatus = Literal["pending", "retrying", "succeeded", "failed", "suppressed", "silenced"]
assert DeliveryStatus.__args__ == DELIVERY_STATUSES  # type: ignore[attr-defined]


class HistoryQuery(PageQuery):
    status: DeliveryStatus | None = Field(default=None, description="Only deliveries in this status.")
    event_type: str | None = Field(default=None, max_length=64, description="Only this event type.")


class AttemptOut(BaseModel):
    attempted_at: datetime
    trigger: Literal["initial", "retry", "redeliver", "recover", "test"]
    request_headers: dict[str, str] = Field(description='Custom header values shown as "********".')
    response_status: int | None
    response_body: str | None = Field(
        description="The first KiB of the response body; a last line in brackets notes a longer "
        "(truncated) or unfinished (incomplete) body."
    )
    duration_ms: float
    error: str | None
    succeeded: bool


class DeliveryOut(BaseModel):
    id: str
    webhook_id: str
    event_id: str = Field(description="Sent as `webhook-id` on every attempt.")
    event_type: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None = Field(description="When the next retry is due (open deliveries).")
    last_error: str | None
    repeats: str | None = Field(
        default=None,
        description="suppressed (a throttled webhook's repeat within a cooldown, not sent): the id of the "
        "delivery that opened the cooldown.",
    )
    silence_id: str | None = Field(
        default=None,
        description="silenced (an event a silence of the organization matched, not sent): the id of that "
        "silence (GET .../silences/{silence_id}). Kept if the delivery is recovered later.",
    )
    created_at: datetime
    updated_at: datetime
    attempts: list[AttemptOut]


class RotatedSecret(BaseModel):
    signing_secret: str = Field(description="The new whsec_... secret, shown once.")
    previous_secret_expires_at: datetime = Field(
        description="Until then deliveries carry signatures by both the new and the previous secret."
    )
