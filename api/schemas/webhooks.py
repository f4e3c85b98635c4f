"""Webhook bodies."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from api.schemas.common import Name, OutboundURL, ProjectId, RecordOut, StrictModel, Timestamp
from store.event_catalog import PUBLISHABLE_TYPES, Severity
from store.events import EVENT_TYPES
from tasks.webhooks.formats import FORMAT_NAMES

EventType = Literal[
    "drift.detected",
    "drift.resolved",
    "threshold.breached",
    "threshold.resolved",
    "recommendation.created",
    "model.registered",
    "webhook.disabled",
    "delivery.exhausted",
]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]
PublishableEventType = Literal[
    "drift.detected",
    "drift.resolved",
    "threshold.breached",
    "threshold.resolved",
    "recommendation.created",
    "model.registered",
]
assert set(PublishableEventType.__args__) == set(PUBLISHABLE_TYPES)  # type: ignore[attr-defined]
WebhookFormat = Literal["standard", "slack", "teams", "pagerduty"]
assert WebhookFormat.__args__ == FORMAT_NAMES  # type: ignore[attr-defined]

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
# PagerDuty's integration (routing) key: 32 letters and digits (or the mask, on a PUT).
RoutingKey = Annotated[
    str, Field(min_length=8, max_length=32, pattern=r"^([A-Za-z0-9]{32}|\*{8})$", json_schema_extra={"writeOnly": True})
]


class WebhookConfig(StrictModel):
    """How the slack, teams and pagerduty formats render events (the standard format sends them as they are)."""

    severity: Severity | None = Field(
        default=None,
        description="The severity every event is shown (and, on PagerDuty, sent) with; default: the "
        "threshold's for threshold events, else the event type's.",
    )
    source: str | None = Field(
        default=None, min_length=1, max_length=255, description="pagerduty: `payload.source`; default: the model."
    )


class WebhookCredentials(StrictModel):
    routing_key: RoutingKey | None = Field(
        default=None,
        description='pagerduty (required): the Events API v2 integration key. Write-only: shown as "********"; '
        "a PUT that omits it or sends the mask keeps it.",
    )


class WebhookIn(StrictModel):
    name: Name
    format: WebhookFormat = Field(
        default="standard",
        description="standard: the event as JSON, signed (Standard Webhooks); slack: a Slack incoming-webhook "
        "message; teams: a Teams Workflows message with an Adaptive Card; pagerduty: PagerDuty Events API v2.",
    )
    url: OutboundURL | None = Field(
        default=None,
        description="Required, except for pagerduty (default https://events.pagerduty.com/v2/enqueue). For slack "
        "and teams the URL is the credential: write-only, shown masked; a PUT that omits it or sends the "
        "masked form keeps it.",
    )
    events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, max_length=50, description="Sent with every delivery; values are write-only."
    )
    config: WebhookConfig = Field(default_factory=WebhookConfig)
    credentials: WebhookCredentials = Field(default_factory=WebhookCredentials)
    project_id: ProjectId | None = None
    enabled: bool = True

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
    format: str
    url: str = Field(description="slack and teams: the origin and a mask (https://hooks.slack.com/********).")
    events: list[str]
    headers: dict[str, str] = Field(description='Each header value as "********".')
    config: dict[str, str] = Field(description="The format's options that are set (severity, source).")
    credentials: dict[str, str] = Field(description='pagerduty: {"routing_key": "********"}.')
    project_id: str | None
    enabled: bool
    disabled_reason: str | None


class WebhookCreated(WebhookOut):
    signing_secret: str = Field(
        description="whsec_... shown once; the standard format signs deliveries with it (the others are "
        "unsigned by their receivers' protocols)."
    )


class RecoverIn(StrictModel):
    since: Timestamp = Field(description="Deliveries created at or after this time (RFC 3339).")
    until: Timestamp | None = Field(default=None, description="... and before this time; default now.")


class RecoverAccepted(BaseModel):
    deliveries: int = Field(description="How many deliveries (retrying or failed) will be sent again.")
    flow_run_id: str | None = Field(
        description="The recover-deliveries Prefect run; null when there is nothing to send."
    )
