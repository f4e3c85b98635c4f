"""Webhook bodies."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from api.schemas.common import HttpURL, Name, ProjectId, RecordOut, StrictModel
from store.events import EVENT_TYPES
from store.settings import get_settings
from tasks.webhooks.ssrf import UnsafeWebhookUrl, check_webhook_url

EventType = Literal["drift.detected", "threshold.breached", "recommendation.created", "model.registered"]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]

# Headers that ModelPulse owns: a custom header may not replace the signature, body framing or identity.
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "host",
        "connection",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
HeaderName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
HeaderValue = Annotated[str, Field(max_length=4096, pattern=r"^[^\r\n\x00]*$")]


class WebhookIn(StrictModel):
    name: Name
    url: HttpURL
    events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, description="Sent with every delivery; values are write-only."
    )
    project_id: ProjectId | None = None
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _public_target(cls, url: str) -> str:
        # Refused again at delivery time against the address actually connected to (DNS rebinding).
        try:
            check_webhook_url(url, allow_private=get_settings().allow_private_webhook_targets)
        except UnsafeWebhookUrl as error:
            raise ValueError(str(error)) from None
        return url

    @field_validator("events")
    @classmethod
    def _unique_events(cls, events: list[str]) -> list[str]:
        return list(dict.fromkeys(events))

    @field_validator("headers")
    @classmethod
    def _not_reserved(cls, headers: dict[str, str]) -> dict[str, str]:
        reserved = sorted(name for name in headers if name.lower() in RESERVED_HEADERS)
        if reserved:
            raise ValueError(f"reserved header(s) cannot be set: {', '.join(reserved)}")
        lowered = [name.lower() for name in headers]
        if len(set(lowered)) != len(lowered):
            raise ValueError("header names must be unique, ignoring case")
        return headers


class WebhookOut(RecordOut):
    name: str
    url: str
    events: list[str]
    headers: dict[str, str] = Field(description='Each header value as "********".')
    project_id: str | None
    enabled: bool
    disabled_reason: str | None


class WebhookCreated(WebhookOut):
    signing_secret: str = Field(description="whsec_... shown once; verify deliveries with it.")
