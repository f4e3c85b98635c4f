"""MLflow model registry webhooks: the subscription ModelPulse keeps on an MLflow server (3.3+), and
the check of what that server delivers.

One webhook per integration, named ``modelpulse-<integration id>``, posting the registry events
ModelPulse acts on to ``<MODELPULSE_PUBLIC_URL>/inbound/mlflow/<integration id>``, signed with a
secret ModelPulse generated and keeps in the integration's block. MLflow signs each delivery as
``X-MLflow-Signature: v1,<base64 HMAC-SHA256 of "{delivery id}.{timestamp}.{body}">`` with the raw
secret as the key, and sends ``X-MLflow-Delivery-Id`` and ``X-MLflow-Timestamp`` (unix seconds)
beside it (``mlflow/webhooks/delivery.py``).

Exceptions::

    RegistryError              MLflow refused a webhook call or could not be reached
    DeliveryRejected           an inbound delivery is unsigned, signed wrongly or too old
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tasks.registries.mlflow import platform_errors
from tasks.upstream_errors import answer_summary, bounded

if TYPE_CHECKING:
    from blocks.mlflow import MlflowConnection

# What ModelPulse acts on. ``registered_model.created`` is left out: a new model is not monitored
# until a version of it is recorded (registered through ModelPulse), so there is nothing to do.
PUSH_EVENTS = (
    "model_version.created",
    "model_version_alias.created",
    "model_version_alias.deleted",
    "model_version_tag.set",
    "model_version_tag.deleted",
)
SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
TIMESTAMP_TOLERANCE_SECONDS = 300


class DeliveryRejected(Exception):
    """An inbound delivery failed verification; ``str(error)`` says why (never anything secret)."""


@dataclass(frozen=True)
class WebhookState:
    """The MLflow webhook as MLflow reports it."""

    webhook_id: str
    status: str  # ACTIVE | DISABLED
    url: str


@dataclass(frozen=True)
class WebhookTest:
    """What MLflow's test delivery to the webhook's URL got back."""

    success: bool
    response_status: int | None
    message: str


def new_webhook_secret() -> str:
    """A fresh signing secret (256 random bits)."""
    return secrets.token_urlsafe(32)


def webhook_name(integration_id: str) -> str:
    return f"modelpulse-{integration_id}"


def _missing(error: Exception) -> bool:
    """Whether ``error`` is MLflow's answer for a webhook it does not have (``mlflow`` is imported here,
    not by this module: the API checks deliveries with ``verify_delivery`` in every worker)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    return isinstance(error, MlflowException) and error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


class MlflowWebhooks:
    """The webhook calls of one MLflow server, with the connection's credentials (an admin's, under
    MLflow's basic-auth app).

    Example:
        ```python
        hooks = MlflowWebhooks(MlflowConnection.load("modelpulse-integration-int-01..."))
        state = hooks.create("modelpulse-int_01...", "https://mp.example.com/inbound/mlflow/int_01...", secret)
        ```
    """

    def __init__(self, connection: MlflowConnection) -> None:
        self._client = connection.get_client()

    def create(self, name: str, url: str, secret: str, description: str | None = None) -> WebhookState:
        with platform_errors():
            webhook = self._client.create_webhook(
                name=name, url=url, events=list(PUSH_EVENTS), description=description, secret=secret, status="ACTIVE"
            )
        return _state(webhook)

    def update(self, webhook_id: str, name: str, url: str, description: str | None = None) -> WebhookState | None:
        """Point the webhook at ``url`` with ModelPulse's events, active again; ``None`` if it is gone."""
        with platform_errors():
            try:
                webhook = self._client.update_webhook(
                    webhook_id, name=name, url=url, events=list(PUSH_EVENTS), description=description, status="ACTIVE"
                )
            except Exception as error:
                if _missing(error):
                    return None
                raise
        return _state(webhook)

    def get(self, webhook_id: str) -> WebhookState | None:
        with platform_errors():
            try:
                return _state(self._client.get_webhook(webhook_id))
            except Exception as error:
                if _missing(error):
                    return None
                raise

    def delete(self, webhook_id: str) -> bool:
        """Delete the webhook; ``False`` if MLflow no longer had it."""
        with platform_errors():
            try:
                self._client.delete_webhook(webhook_id)
            except Exception as error:
                if _missing(error):
                    return False
                raise
        return True

    def test(self, webhook_id: str) -> WebhookTest:
        """Have MLflow send its example ``model_version.created`` to the webhook's URL, and report."""
        with platform_errors():
            result = self._client.test_webhook(webhook_id, event=PUSH_EVENTS[0])
        if result.success:
            message = f"MLflow delivered a test event: HTTP {result.response_status}"
        elif result.response_status is not None:
            # The receiver is our inbound route, or whatever answers at MODELPULSE_PUBLIC_URL (a proxy).
            answer = answer_summary("problem", result.response_status, result.response_body)
            message = f"MLflow's test delivery got {answer}"
        else:
            message = f"MLflow's test delivery failed: {bounded(result.error_message or 'no answer')}"
        return WebhookTest(success=bool(result.success), response_status=result.response_status, message=message)


def _state(webhook) -> WebhookState:  # noqa: ANN001 - mlflow.entities.webhook.Webhook
    return WebhookState(webhook_id=webhook.webhook_id, status=str(webhook.status), url=webhook.url)


def verify_delivery(
    secret: str, headers: dict[str, str], body: bytes, now: float, tolerance: int = TIMESTAMP_TOLERANCE_SECONDS
) -> str:
    """Check an MLflow delivery's signature and timestamp; return its delivery id.

    ``headers`` are looked up case-insensitively (pass Werkzeug's ``request.headers``). Several
    space-separated ``v1,`` signatures are accepted (one matching is enough).

    Raises:
        DeliveryRejected: a header is missing, the timestamp is more than ``tolerance`` seconds
            from ``now``, or no signature matches.
    """
    delivery_id = headers.get(DELIVERY_ID_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    for name, value in (
        (DELIVERY_ID_HEADER, delivery_id),
        (TIMESTAMP_HEADER, timestamp),
        (SIGNATURE_HEADER, signature),
    ):
        if not value:
            raise DeliveryRejected(f"the {name} header is missing")
    if len(delivery_id) > 200:
        raise DeliveryRejected(f"the {DELIVERY_ID_HEADER} header is too long")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise DeliveryRejected(f"the {TIMESTAMP_HEADER} header is not a unix timestamp") from None
    if abs(now - sent_at) > tolerance:
        raise DeliveryRejected(f"the delivery's timestamp is more than {tolerance} seconds from this server's clock")
    content = f"{delivery_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(secret.encode(), content, hashlib.sha256).digest()).decode()
    for entry in signature.split():
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return delivery_id
    raise DeliveryRejected("the signature does not match")
