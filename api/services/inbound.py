"""Events the registries push: the integration's inbound secret, authenticating a delivery, recording it.

The exceptions a route turns into answers are re-exported here: ``DeliveryRejected`` (401) and
``InvalidDelivery`` (422).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from sqlalchemy.orm import Session

from store.models import Integration
from tasks.push import InboundOutcome, InvalidDelivery, inbound_secret
from tasks.push.mlflow import apply_mlflow_delivery, parse_delivery
from tasks.push.sagemaker import KEY_HEADER, apply_sagemaker_event, keys_match, parse_event
from tasks.registries.mlflow_webhooks import DeliveryRejected, verify_delivery

__all__ = [
    "KEY_HEADER",
    "DeliveryRejected",
    "InboundOutcome",
    "InvalidDelivery",
    "pushed_events_secret",
    "record_mlflow_delivery",
    "record_sagemaker_event",
    "sagemaker_key_matches",
    "verified_mlflow_delivery_id",
]


def pushed_events_secret(integration: Integration) -> str | None:
    """The secret the platform authenticates its pushes with, or None if the block holds none."""
    secret = inbound_secret(integration)
    return None if secret is None else secret.get_secret_value()


def verified_mlflow_delivery_id(secret: str, headers: Mapping[str, str], body: bytes) -> str:
    """The delivery id of an MLflow delivery whose signature and timestamp hold; else ``DeliveryRejected``."""
    return verify_delivery(secret, headers, body, time.time())


def record_mlflow_delivery(
    session: Session, integration: Integration, delivery_id: str, payload: object
) -> InboundOutcome:
    """Record what an authenticated MLflow delivery says (``InvalidDelivery`` if it is not such an event)."""
    event, data = parse_delivery(payload)
    return apply_mlflow_delivery(session, integration, delivery_id, event, data)


def sagemaker_key_matches(sent: str | None, secret: str) -> bool:
    """Whether the ``X-ModelPulse-Key`` an EventBridge destination sent is the integration's key."""
    return keys_match(sent, secret)


def record_sagemaker_event(session: Session, integration: Integration, payload: object) -> InboundOutcome:
    """Record what an authenticated SageMaker event says (``InvalidDelivery`` if it is not such an event)."""
    return apply_sagemaker_event(session, integration, parse_event(payload))
