"""SageMaker events as an EventBridge API destination delivers them: the event JSON is the body.

Two kinds are acted on (the shapes of AWS's "Events that Amazon SageMaker AI sends to Amazon
EventBridge"):

- ``SageMaker Model Package State Change`` of a versioned package in a monitored group: the version
  is recorded and ``model.registered`` emitted (``"source": "push"``). SageMaker sends one event per
  state change of a package (and may send several per change), each with its own id; the
  (integration, group, version) claim records it once whatever arrives.
- ``SageMaker Endpoint State Change``: the endpoint's status is recorded as the endpoint monitor
  records it (keyed by the endpoint ARN, status in the API's spelling: ``IN_SERVICE`` ->
  ``InService``). The event does not say which models the endpoint serves, so the last recorded
  deployments are kept; the monitor records what changed in them on its next run.

Everything else (another region, another detail type) is answered and ignored. The key that
EventBridge's connection sends is compared in constant time (``keys_match``).
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from store.models import Integration
from store.registry import (
    claim_inbound_receipt,
    is_monitored,
    last_endpoint_status,
    record_endpoint_status,
    record_model_version,
)
from tasks.push.outcome import InboundOutcome, InvalidDelivery

# The header the EventBridge connection's API-key authorization sends (its ``ApiKeyName``).
KEY_HEADER = "X-ModelPulse-Key"
MODEL_PACKAGE_CHANGE = "SageMaker Model Package State Change"
ENDPOINT_CHANGE = "SageMaker Endpoint State Change"


def keys_match(given: str | None, stored: str) -> bool:
    """Whether the delivered key is the stored one, in time independent of where they differ."""
    return given is not None and hmac.compare_digest(given.encode(), stored.encode())


def parse_event(body: Any) -> dict[str, Any]:
    """Check the EventBridge envelope (``id``, ``detail-type``, ``detail``); return the event.

    Raises:
        InvalidDelivery: the body is not an EventBridge event.
    """
    if not isinstance(body, dict):
        raise InvalidDelivery("body", "must be an EventBridge event (a JSON object)")
    event_id = body.get("id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 200:
        raise InvalidDelivery("id", "must be the event's id (a string of at most 200 characters)")
    if not isinstance(body.get("detail-type"), str):
        raise InvalidDelivery("detail-type", "must be a string")
    if not isinstance(body.get("detail"), dict):
        raise InvalidDelivery("detail", "must be an object")
    return body


def apply_sagemaker_event(session: Session, integration: Integration, event: dict[str, Any]) -> InboundOutcome:
    """Record what one authenticated event says, once per event id (the caller commits).

    Raises:
        InvalidDelivery: a SageMaker event this module acts on lacks a field it needs.
    """
    kind = event["detail-type"]
    handler = {MODEL_PACKAGE_CHANGE: _package_version, ENDPOINT_CHANGE: _endpoint_status}.get(kind)
    arguments = _arguments(kind, event) if handler is not None else {}  # a bad event takes no receipt
    if not claim_inbound_receipt(session, integration.id, event["id"]):
        return InboundOutcome("duplicate", f"event {event['id']} was received before")
    source = event.get("source")
    if source not in (None, "aws.sagemaker", ["aws.sagemaker"]):  # AWS's own example carries it as a list
        return InboundOutcome("ignored", f"events from {source!r} are not SageMaker's")
    region = integration.config.get("region_name")
    if event.get("region") not in (None, region):
        return InboundOutcome("ignored", f"the event is from {event.get('region')}, this integration reads {region}")
    if handler is None:
        return InboundOutcome("ignored", f"{kind!r} is not an event ModelPulse acts on")
    return handler(session, integration, **arguments)


def _arguments(kind: str, event: dict[str, Any]) -> dict[str, Any]:
    detail = event["detail"]
    if kind == MODEL_PACKAGE_CHANGE:
        group = _text(detail, "ModelPackageGroupName")
        arn = _text(detail, "ModelPackageArn", longest=1000)
        return {"group": group, "version": _package_version_label(detail.get("ModelPackageVersion")), "arn": arn}
    resources = event.get("resources")
    arn = detail.get("EndpointArn") or (resources[0] if isinstance(resources, list) and resources else None)
    if not isinstance(arn, str) or not 0 < len(arn) <= 1000:
        raise InvalidDelivery("detail.EndpointArn", "must be the endpoint's ARN")
    status = _text(detail, "EndpointStatus", longest=40)
    return {"arn": arn, "status": api_status(status), "observed_at": event_time(event)}


def _package_version_label(version: Any) -> str | None:
    """``ModelPackageVersion`` (a number; absent for an unversioned package) as the sync labels it."""
    if version is None:
        return None
    if isinstance(version, float) and version.is_integer():
        version = int(version)
    if isinstance(version, int) and not isinstance(version, bool) and version > 0:
        return str(version)
    if isinstance(version, str) and version.isdigit() and len(version) <= 20:
        return str(int(version))
    raise InvalidDelivery("detail.ModelPackageVersion", "must be a positive whole number")


def _text(detail: dict[str, Any], name: str, longest: int = 500) -> str:
    value = detail.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= longest:
        raise InvalidDelivery(f"detail.{name}", f"must be a string of 1 to {longest} characters")
    return value


def _package_version(
    session: Session, integration: Integration, group: str, version: str | None, arn: str
) -> InboundOutcome:
    if version is None:
        return InboundOutcome("ignored", f"the package {arn} is not versioned (no model package group version)")
    if not is_monitored(session, integration.id, group):
        return InboundOutcome("ignored", f"model package group {group!r} is not monitored by this integration")
    if record_model_version(session, integration, group, version, arn, source="push") is None:
        return InboundOutcome("ignored", f"version {version} of {group!r} is recorded already")
    return InboundOutcome("recorded", f"version {version} of {group!r} recorded; model.registered emitted")


def _endpoint_status(
    session: Session, integration: Integration, arn: str, status: str, observed_at: datetime
) -> InboundOutcome:
    last = last_endpoint_status(session, integration.id, arn)
    deployments = list(last.deployments) if last is not None else []
    if record_endpoint_status(session, integration.id, arn, status, deployments, observed_at) is None:
        return InboundOutcome("ignored", f"endpoint {arn} is {status} as recorded (or a later status is)")
    return InboundOutcome("recorded", f"endpoint {arn} is {status}")


def api_status(status: str) -> str:
    """SageMaker's status as its API spells it (``DescribeEndpoint``): events say ``IN_SERVICE``."""
    if "_" in status or status.isupper():
        return "".join(part.capitalize() for part in status.split("_"))
    return status


def event_time(event: dict[str, Any]) -> datetime:
    """When the event happened: EventBridge's ``time`` (RFC 3339, or epoch milliseconds in some of
    AWS's own examples); now when it has none."""
    value = event.get("time")
    if value is None:
        return datetime.now(UTC)
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value) / 1000, UTC)
        if isinstance(value, str) and value.isdigit():
            return datetime.fromtimestamp(int(value) / 1000, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise InvalidDelivery("time", "must be an RFC 3339 timestamp")
