"""The event catalog: every event type ModelPulse sends, and what its ``data`` holds.

One pydantic model per type describes ``data``. The same model is the schema ``POST .../events``
validates against, what ``GET .../event-types`` and the OpenAPI ``webhooks`` section publish, and what
the emitters (thresholds, drift checks, the delivery machinery) fill in; a test checks that what they
emit validates. Fields a model does not list are allowed: a producer may add context of its own.

Kinds of type::

    publishable   the monitoring core may publish it (POST .../events); ModelPulse emits it too
    operational   ModelPulse emits it about its own webhooks (webhook.disabled, delivery.exhausted);
                  never delivered to the webhook it is about
    webhook.test  sent by POST .../webhooks/{id}/test to that webhook only; not subscribable
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["critical", "error", "warning", "info"]
SEVERITIES: tuple[str, ...] = Severity.__args__  # type: ignore[attr-defined]

_Name = Field(min_length=1, max_length=200)
_Id = Field(min_length=1, max_length=64)
_Time = Field(max_length=64, description="RFC 3339 date-time.")


class EventData(BaseModel):
    """Base of every ``data`` model: fields beyond the listed ones are allowed."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class EventWindow(EventData):
    from_: str = Field(alias="from", max_length=64, description="Start (RFC 3339), inclusive.")
    to: str = Field(max_length=64, description="End (RFC 3339), exclusive.")


class DriftCheckWindows(EventData):
    reference: EventWindow
    current: EventWindow


class DriftedFeature(EventData):
    feature: str = Field(min_length=1, max_length=200)
    method: str | None = Field(default=None, max_length=32)
    value: float | None = None
    threshold: float | None = None
    p_value: float | None = None


class DriftDetectedData(EventData):
    model: str = _Name
    model_version: str | None = Field(default=None, max_length=100)
    check_id: str | None = Field(default=None, max_length=64, description="The drift check (chk_...).")
    method: str | None = Field(default=None, max_length=32, description="ks, psi, js, chisquare, ... or auto.")
    features: list[DriftedFeature] = Field(
        default_factory=list, max_length=1000, description="The features that drifted, with their statistic."
    )
    window: DriftCheckWindows | None = None
    monitor_id: str | None = Field(default=None, max_length=64, description="The monitor that ran the check.")
    episode_event_id: str | None = Field(
        default=None,
        max_length=64,
        description="A monitor's check: the id of the drift.detected event that opened the drift episode "
        "(this event's own id for the first one). drift.resolved names the same id.",
    )


class ThresholdBreachedData(EventData):
    threshold_id: str | None = Field(default=None, max_length=64, description="The threshold rule (thr_...).")
    model: str = _Name
    metric: str = Field(min_length=1, max_length=64, description="e.g. drift.psi, latency_ms.p95, records.count.")
    operator: Literal[">", ">=", "<", "<="]
    threshold: float = Field(description="The rule's value.")
    value: float = Field(description="The measured value that breached it.")
    severity: Severity | None = Field(default=None, description="The rule's severity (default error).")
    window: EventWindow | None = None
    check_id: str | None = Field(default=None, max_length=64, description="drift.* metrics: the drift check.")
    feature: str | None = Field(default=None, max_length=200, description="drift.* metrics: the worst feature.")


class ThresholdResolvedData(EventData):
    threshold_id: str | None = Field(default=None, max_length=64)
    model: str = _Name
    metric: str = Field(min_length=1, max_length=64)
    operator: Literal[">", ">=", "<", "<="] | None = None
    threshold: float | None = None
    value: float | None = Field(
        default=None, description="The value back within bounds; null when the rule changed or went away."
    )
    severity: Severity | None = None
    reason: Literal["recovered", "threshold_changed", "threshold_deleted"] = Field(
        default="recovered", description="recovered: a value within bounds; otherwise the rule was changed or deleted."
    )
    breached_at: str | None = Field(default=None, max_length=64, description="When the episode began (RFC 3339).")
    episode_event_id: str | None = Field(
        max_length=64,
        description="The id of the threshold.breached event that opened the episode (null only for an "
        "episode that began before ModelPulse recorded it).",
    )
    window: EventWindow | None = None


class DriftResolvedData(EventData):
    model: str = _Name
    model_version: str | None = Field(default=None, max_length=100)
    monitor_id: str | None = Field(default=None, max_length=64)
    check_id: str | None = Field(default=None, max_length=64, description="The clean check that ended the episode.")
    reason: Literal["recovered", "monitor_deleted", "monitor_disabled"] = "recovered"
    drifting_since: str | None = Field(default=None, max_length=64, description="When the episode began (RFC 3339).")
    episode_event_id: str | None = Field(
        max_length=64, description="The id of the drift.detected event that opened the episode."
    )


class RecommendationCreatedData(EventData):
    recommendation_id: str | None = Field(default=None, max_length=64)
    model: str = _Name
    kind: Literal["retrain", "scale_endpoint", "add_monitor"]
    reason: str = Field(min_length=1, max_length=2000)
    details: dict[str, Any] = Field(default_factory=dict, description="What the rule saw.")


class ModelRegisteredData(EventData):
    integration_id: str | None = Field(default=None, max_length=64)
    integration_type: Literal["mlflow", "sagemaker", "vertex_ai"] | None = None
    name: str = _Name
    version: str | None = Field(default=None, max_length=200)
    external_id: str | None = Field(default=None, max_length=2048, description="The platform's id or URI.")
    source: Literal["api", "sync"] | None = None


DisableReason = Literal["gone", "no_service", "channel_is_archived", "workflow_not_found", "days_of_failures"]


class WebhookDisabledData(EventData):
    webhook_id: str = _Id
    name: str = _Name
    format: Literal["standard", "slack", "teams", "pagerduty"]
    url: str = Field(max_length=2048, description="Masked for formats whose URL is the secret (slack, teams).")
    reason: DisableReason = Field(
        description="gone: the receiver answered 410; no_service / channel_is_archived: Slack removed the "
        "incoming webhook or archived its channel; workflow_not_found: the Teams workflow was deleted; "
        "days_of_failures: nothing but failures for MODELPULSE_WEBHOOK_DISABLE_AFTER_DAYS."
    )
    detail: str = Field(max_length=2000, description="The reason in words, as the webhook's disabled_reason.")
    disabled_at: str = _Time


class DeliveryExhaustedData(EventData):
    webhook_id: str = _Id
    webhook_name: str = _Name
    delivery_id: str = _Id
    event_id: str = _Id
    event_type: str = Field(max_length=64)
    attempts: int = Field(ge=1)
    last_error: str | None = Field(default=None, max_length=2000)


class WebhookTestData(EventData):
    webhook_id: str = _Id
    message: str = Field(max_length=2000)


@dataclass(frozen=True)
class EventType:
    """One entry of the catalog."""

    type: str
    title: str
    description: str
    data: type[EventData]
    example: dict[str, Any]
    severity: Severity  # the default severity paging formats give it
    publishable: bool = False
    operational: bool = False
    subscribable: bool = True

    def data_schema(self) -> dict[str, Any]:
        """The JSON Schema of ``data`` (self-contained: definitions under ``$defs``)."""
        return self.data.model_json_schema(mode="validation", by_alias=True)


_WINDOW = {"from": "2026-11-02T09:00:00+00:00", "to": "2026-11-02T10:00:00+00:00"}

CATALOG: tuple[EventType, ...] = (
    EventType(
        "drift.detected",
        "Drift detected",
        "A drift check found features whose distribution moved away from the reference window. A monitor's "
        "checks emit it while the drift lasts, each naming the event that opened the episode.",
        DriftDetectedData,
        {
            "check_id": "chk_01jdx3k8v5c8m2y7q4n6t9w0ab",
            "model": "churn",
            "model_version": "3",
            "method": "psi",
            "features": [{"feature": "age", "method": "psi", "value": 0.31, "threshold": 0.2, "p_value": None}],
            "window": {
                "reference": {"from": "2026-11-01T00:00:00+00:00", "to": "2026-11-01T01:00:00+00:00"},
                "current": _WINDOW,
            },
            "monitor_id": "mon_01jdx3k8v5c8m2y7q4n6t9w0ab",
            "episode_event_id": "evt_01jdx3k8v5c8m2y7q4n6t9w0ab",
        },
        "warning",
        publishable=True,
    ),
    EventType(
        "drift.resolved",
        "Drift resolved",
        "A monitor whose checks reported drift checked clean again (or was deleted or disabled): the drift "
        "episode is over. Emitted once per episode.",
        DriftResolvedData,
        {
            "model": "churn",
            "model_version": "3",
            "monitor_id": "mon_01jdx3k8v5c8m2y7q4n6t9w0ab",
            "check_id": "chk_01jdx4m0c3d9e8f7g6h5j4k3m2",
            "reason": "recovered",
            "drifting_since": "2026-11-02T10:00:02+00:00",
            "episode_event_id": "evt_01jdx3k8v5c8m2y7q4n6t9w0ab",
        },
        "info",
        publishable=True,
    ),
    EventType(
        "threshold.breached",
        "Threshold breached",
        "A threshold rule's metric crossed its value: a breach episode begins. Emitted once per episode, "
        "however long the breach lasts.",
        ThresholdBreachedData,
        {
            "threshold_id": "thr_01jdx3k8v5c8m2y7q4n6t9w0ab",
            "model": "fraud",
            "metric": "latency_ms.p95",
            "operator": ">",
            "threshold": 250.0,
            "value": 812.5,
            "severity": "error",
            "window": _WINDOW,
        },
        "error",
        publishable=True,
    ),
    EventType(
        "threshold.resolved",
        "Threshold resolved",
        "A breached threshold is back within bounds (or its rule was changed or deleted): the breach "
        "episode is over. Emitted once per episode, naming the threshold.breached event that opened it.",
        ThresholdResolvedData,
        {
            "threshold_id": "thr_01jdx3k8v5c8m2y7q4n6t9w0ab",
            "model": "fraud",
            "metric": "latency_ms.p95",
            "operator": ">",
            "threshold": 250.0,
            "value": 180.2,
            "severity": "error",
            "reason": "recovered",
            "breached_at": "2026-11-02T10:00:00+00:00",
            "episode_event_id": "evt_01jdx3k8v5c8m2y7q4n6t9w0ab",
            "window": _WINDOW,
        },
        "info",
        publishable=True,
    ),
    EventType(
        "recommendation.created",
        "Recommendation created",
        "A recommendation rule advises an action: retrain, scale_endpoint or add_monitor.",
        RecommendationCreatedData,
        {
            "recommendation_id": "rec_01jdx3k8v5c8m2y7q4n6t9w0ab",
            "model": "churn",
            "kind": "retrain",
            "reason": "age drifted in 3 consecutive drift checks",
            "details": {"features": ["age"], "check_id": "chk_01jdx3k8v5c8m2y7q4n6t9w0ab"},
        },
        "info",
        publishable=True,
    ),
    EventType(
        "model.registered",
        "Model registered",
        "A model version was registered through ModelPulse, or found by a registry sync.",
        ModelRegisteredData,
        {
            "integration_id": "int_01jdx3k8v5c8m2y7q4n6t9w0ab",
            "integration_type": "mlflow",
            "name": "churn",
            "version": "4",
            "external_id": "models:/churn/4",
            "source": "sync",
        },
        "info",
        publishable=True,
    ),
    EventType(
        "webhook.disabled",
        "Webhook disabled",
        "ModelPulse disabled one of the organization's webhooks: its receiver is gone (410, or Slack's "
        "no_service / channel_is_archived) or it failed for days. Never sent to the webhook it is about.",
        WebhookDisabledData,
        {
            "webhook_id": "wh_01jdx3k8v5c8m2y7q4n6t9w0ab",
            "name": "alerts-slack",
            "format": "slack",
            "url": "https://hooks.slack.com/********",
            "reason": "no_service",
            "detail": "Slack answered 404 no_service: the incoming webhook was removed",
            "disabled_at": "2026-11-02T10:00:00+00:00",
        },
        "error",
        operational=True,
    ),
    EventType(
        "delivery.exhausted",
        "Delivery exhausted",
        "A delivery spent its whole retry schedule without success; it will not be retried again unless "
        "redelivered or recovered. Never sent to the webhook it is about.",
        DeliveryExhaustedData,
        {
            "webhook_id": "wh_01jdx3k8v5c8m2y7q4n6t9w0ab",
            "webhook_name": "orders-service",
            "delivery_id": "dlv_01jdx3k8v5c8m2y7q4n6t9w0ab",
            "event_id": "evt_01jdx3k8v5c8m2y7q4n6t9w0ab",
            "event_type": "threshold.breached",
            "attempts": 8,
            "last_error": "HTTP 503",
        },
        "warning",
        operational=True,
    ),
    EventType(
        "webhook.test",
        "Test event",
        "Sent by POST .../webhooks/{webhook_id}/test to that webhook only, to check that it receives.",
        WebhookTestData,
        {"webhook_id": "wh_01jdx3k8v5c8m2y7q4n6t9w0ab", "message": "This is a test event from ModelPulse."},
        "info",
        subscribable=False,
    ),
)

BY_TYPE: dict[str, EventType] = {entry.type: entry for entry in CATALOG}
SUBSCRIBABLE_TYPES: tuple[str, ...] = tuple(entry.type for entry in CATALOG if entry.subscribable)
PUBLISHABLE_TYPES: tuple[str, ...] = tuple(entry.type for entry in CATALOG if entry.publishable)
OPERATIONAL_TYPES: frozenset[str] = frozenset(entry.type for entry in CATALOG if entry.operational)


def about_webhook(event_type: str, data: dict[str, Any]) -> str | None:
    """The webhook an operational event is about (it is never delivered there), else ``None``."""
    if event_type in OPERATIONAL_TYPES:
        webhook_id = data.get("webhook_id")
        return webhook_id if isinstance(webhook_id, str) else None
    return None


# Episode-ending types and the type that opens their episode: a throttled webhook always receives the
# end, which also ends the cooldown of the opening type's group (``store.throttles``).
EPISODE_OPENERS: dict[str, str] = {
    "drift.resolved": "drift.detected",
    "threshold.resolved": "threshold.breached",
}
assert all(end in BY_TYPE and start in BY_TYPE for end, start in EPISODE_OPENERS.items())
