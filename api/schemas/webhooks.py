"""Webhook bodies."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, Field, StrictInt, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from api.schemas.common import Name, OutboundURL, ProjectId, RecordOut, StrictModel, Timestamp, serialised_at_most
from store.deliveries import RECOVER_STATUS_CHOICES
from store.event_catalog import PUBLISHABLE_TYPES, Severity
from store.event_filters import MAX_CONDITIONS, MAX_DEPTH, FilterInvalid, compile_filter
from store.events import EVENT_TYPES
from store.throttles import MAX_COOLDOWN_SECONDS, MAX_GROUP_BY, throttle_problems
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


FILTER_MAX_BYTES = 16 * 1024
FILTER_DESCRIPTION = (
    "Which events of its `events` (and project) the webhook receives; null or omitted: every one. A JSON "
    "object mapping dotted paths of the event (`type`, `project_id`, `data.<field>`) to a value (equality) "
    "or an operator object: `$eq` `$ne` `$in` `$nin` `$gt` `$gte` `$lt` `$lte` `$exists` `$glob` "
    "(`fraud-*`: `*`, `?`, `[...]`). Conditions are ANDed; `$or` / `$and` take a list of filters. "
    "Severities compare by order (info < warning < error < critical). Checked against the subscribed types' "
    f"catalog entries (GET .../event-types): a 422 names `filter.<path>`. At most {MAX_CONDITIONS} "
    f"conditions, nested {MAX_DEPTH} deep, {FILTER_MAX_BYTES // 1024} KiB as JSON. An event it does not match "
    "gets no delivery."
)
FILTER_EXAMPLE = {"data.model": {"$glob": "fraud-*"}, "data.severity": {"$gte": "error"}}


class Throttle(StrictModel):
    """A cooldown per event type and group: the first event of a type and group is sent, its repeats within
    `cooldown_seconds` are recorded as `suppressed` (naming the delivery they repeat) and not sent. An
    episode's end (`drift.resolved`, `threshold.resolved`) is always sent and ends its group's cooldown."""

    group_by: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        min_length=1,
        max_length=MAX_GROUP_BY,
        description="Dotted paths of the event, as in filters (`data.model`, `project_id`), that make its "
        "group; each one a subscribed type has.",
    )
    cooldown_seconds: StrictInt = Field(
        ge=1, le=MAX_COOLDOWN_SECONDS, description=f"How long a group stays quiet (1 to {MAX_COOLDOWN_SECONDS})."
    )


THROTTLE_EXAMPLE = {"group_by": ["data.model", "data.feature"], "cooldown_seconds": 3600}


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
    filter: Annotated[dict[str, Any], *serialised_at_most(FILTER_MAX_BYTES)] | None = Field(
        default=None, description=FILTER_DESCRIPTION, json_schema_extra={"examples": [FILTER_EXAMPLE]}
    )
    throttle: Throttle | None = Field(
        default=None,
        description="A cooldown per event type and group; null or omitted: every event is sent. A PUT "
        "replaces it (and a changed throttle starts every group afresh).",
        json_schema_extra={"examples": [THROTTLE_EXAMPLE]},
    )

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

    @model_validator(mode="after")
    def _throttle_fits_the_events(self) -> Self:
        # The group_by paths are checked against the subscribed types as filters' paths are.
        if self.throttle is None:
            return self
        problems = throttle_problems(self.throttle.model_dump(), self.events)
        if problems:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("throttle_invalid", "{reason}", {"reason": message}),
                        loc=("throttle", *location),
                        input=self.throttle.model_dump(),
                    )
                    for location, message in problems
                ],
            ) from None
        return self

    @model_validator(mode="after")
    def _filter_fits_the_events(self) -> Self:
        # After the fields: the paths are checked against the subscribed types. Each error is located
        # at its place in the filter (filter.data.model, filter.$or[1].type).
        if self.filter is not None:
            check_filter(type(self).__name__, self.filter, self.events, ("filter",))
        return self


def check_filter(model: str, source: dict[str, Any], event_types: list[str], at: tuple[str, ...]) -> None:
    """Raise a ``ValidationError`` locating each problem of a filter under ``at`` (``filter.data.model``)."""
    try:
        compile_filter(source, event_types)
    except FilterInvalid as invalid:
        raise ValidationError.from_exception_data(
            model,
            [
                InitErrorDetails(
                    type=PydanticCustomError("filter_invalid", "{reason}", {"reason": message}),
                    loc=(*at, *location),
                    input=source,
                )
                for location, message in invalid.errors
            ],
        ) from None


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
    filter: dict[str, Any] | None = Field(description="The webhook's filter, as given; null: every event.")
    throttle: Throttle | None = Field(description="The webhook's throttle; null: every event is sent.")


class WebhookCreated(WebhookOut):
    signing_secret: str = Field(
        description="whsec_... shown once; the standard format signs deliveries with it (the others are "
        "unsigned by their receivers' protocols)."
    )


RecoverStatus = Literal["retrying", "failed", "silenced"]
assert RecoverStatus.__args__ == RECOVER_STATUS_CHOICES  # type: ignore[attr-defined]


class RecoverIn(StrictModel):
    since: Timestamp = Field(description="Deliveries created at or after this time (RFC 3339).")
    until: Timestamp | None = Field(default=None, description="... and before this time; default now.")
    statuses: list[RecoverStatus] = Field(
        default=["retrying", "failed"],
        min_length=1,
        max_length=len(RECOVER_STATUS_CHOICES),
        description="Which deliveries of the window are sent: by default those whose last attempt did not "
        "succeed (`retrying`, `failed`); add `silenced` for the events a silence held back (after a "
        'maintenance window: `["silenced"]` alone sends only those).',
    )

    @field_validator("statuses")
    @classmethod
    def _unique_statuses(cls, statuses: list[str]) -> list[str]:
        return list(dict.fromkeys(statuses))


class RecoverAccepted(BaseModel):
    deliveries: int = Field(description="How many deliveries (of `statuses`) will be sent again.")
    flow_run_id: str | None = Field(
        description="The recover-deliveries Prefect run; null when there is nothing to send."
    )
