"""Push subscriptions of integrations: the MLflow webhook ModelPulse keeps on the platform, the
inbound URL each platform posts to, and what the API shows and checks about them.

With ``config.push_events`` on, creating an MLflow integration registers a webhook on its server
(pointing at ``MODELPULSE_PUBLIC_URL`` + ``/inbound/mlflow/<id>``, signed with a secret generated
here and kept only in the integration's block); a PUT points it at the new URL or server (or
deletes it when push is turned off); a DELETE deletes it. A SageMaker integration's push needs
nothing on AWS from us (the operator creates the EventBridge rule, connection and API destination),
only its ``credentials.events_api_key``.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app

from api.errors import Unprocessable, UpstreamError, UpstreamTimeout
from api.schemas.integrations import PushOut
from api.schemas.registries import PushCheckOut
from api.services.connected_records import Previous, Subscribed
from blocks.connections import load_connection
from blocks.mlflow import MlflowConnection
from store.models import Integration, utcnow
from tasks.push.sagemaker import KEY_HEADER
from tasks.registries import RegistryError, RegistryTimeout
from tasks.registries.mlflow_webhooks import MlflowWebhooks, WebhookState, new_webhook_secret, webhook_name

log = logging.getLogger(__name__)

INBOUND_PATHS = {"mlflow": "/inbound/mlflow/{id}", "sagemaker": "/inbound/sagemaker/{id}"}


def inbound_url(integration: Integration) -> str | None:
    """Where the platform posts this integration's events (the path alone without a public URL)."""
    path = INBOUND_PATHS.get(integration.type)
    if path is None:
        return None
    return (current_app.config.get("PUBLIC_URL") or "") + path.format(id=integration.id)


def push_out(integration: Integration) -> PushOut:
    state = integration.push_state or {}
    enabled = integration.type in INBOUND_PATHS and bool(integration.config.get("push_events"))
    return PushOut(
        enabled=enabled,
        inbound_url=inbound_url(integration),
        key_header=KEY_HEADER if integration.type == "sagemaker" else None,
        mlflow_webhook_id=state.get("mlflow_webhook_id"),
        mlflow_webhook_status=state.get("mlflow_webhook_status"),
        checked_at=state.get("checked_at"),
    )


def _state(webhook: WebhookState) -> dict[str, Any]:
    return {
        "mlflow_webhook_id": webhook.webhook_id,
        "mlflow_webhook_status": webhook.status,
        "checked_at": utcnow().isoformat(),
    }


def _platform_problem(error: RegistryError) -> Exception:
    if isinstance(error, RegistryTimeout):
        return UpstreamTimeout(str(error))
    return UpstreamError(f"The MLflow webhook could not be registered: {error}")


def _delete_webhook(integration_id: str, webhook_id: str, connection: Any) -> None:
    """Delete an MLflow webhook, best effort: an unreachable server must not keep a record alive.

    A webhook left behind posts to a route that answers 404 for an integration that is gone.
    """
    try:
        MlflowWebhooks(connection).delete(webhook_id)
    except RegistryError as error:
        log.warning("integration %s: MLflow webhook %s was not deleted: %s", integration_id, webhook_id, error)


def _previous_webhook(previous: Previous | None) -> tuple[str, MlflowConnection] | None:
    if previous is None or previous.type != "mlflow" or not isinstance(previous.block, MlflowConnection):
        return None
    webhook_id = (previous.push_state or {}).get("mlflow_webhook_id")
    return (webhook_id, previous.block) if webhook_id else None


class IntegrationPushSubscriptions:
    """``api.services.connected_records.PlatformSubscriptions`` for integrations."""

    def subscribe(self, record: Integration, credentials: dict[str, Any], previous: Previous | None) -> Subscribed:
        push = bool(record.config.get("push_events"))
        if record.type == "sagemaker" and push and not credentials.get("events_api_key"):
            raise Unprocessable.field(
                "credentials.events_api_key", "is required with config.push_events: the EventBridge connection sends it"
            )
        earlier = _previous_webhook(previous)
        if record.type != "mlflow" or not push:
            if earlier is not None:
                _delete_webhook(record.id, *earlier)
            record.push_state = None
            return Subscribed()
        url = inbound_url(record)
        if not current_app.config.get("PUBLIC_URL"):
            raise Unprocessable.field(
                "config.push_events",
                "needs MODELPULSE_PUBLIC_URL, the address MLflow can reach this API at (set it on the API's machines)",
            )
        connection = MlflowConnection.from_settings(record.config, credentials)
        webhooks = MlflowWebhooks(connection)
        name, description = (
            webhook_name(record.id),
            f"ModelPulse integration {record.name!r} ({record.organization_id})",
        )
        try:
            if earlier is not None:
                webhook_id, old_connection = earlier
                same_server = (
                    previous is not None and previous.config.get("tracking_uri") == record.config["tracking_uri"]
                )
                if same_server and old_connection.webhook_secret is not None:
                    updated = webhooks.update(webhook_id, name, url, description)
                    if updated is not None:  # else someone deleted it on MLflow: register it again
                        record.push_state = _state(updated)
                        return Subscribed({"webhook_secret": old_connection.webhook_secret.get_secret_value()})
                else:
                    _delete_webhook(record.id, webhook_id, old_connection)
            secret = new_webhook_secret()
            created = webhooks.create(name, url, secret, description)
        except RegistryError as error:
            raise _platform_problem(error) from None
        record.push_state = _state(created)
        return Subscribed(
            {"webhook_secret": secret}, undo=lambda: _delete_webhook(record.id, created.webhook_id, connection)
        )

    def unsubscribe(self, record: Integration, block: Any) -> None:
        webhook_id = (record.push_state or {}).get("mlflow_webhook_id")
        if record.type == "mlflow" and webhook_id and isinstance(block, MlflowConnection):
            _delete_webhook(record.id, webhook_id, block)


def check_push(integration: Integration, inbound: str | None) -> tuple[PushCheckOut | None, dict[str, Any] | None]:
    """Check the integration's push path (``POST .../test``): the answer and the push state to store.

    ``inbound`` is ``inbound_url(integration)``. Calls the platform (outside the request's app context:
    run it through ``api.services.registry_calls.call_platform``). ``(None, state)`` when
    push is off. MLflow: the webhook must exist and be active, and MLflow's own test delivery (its
    example ``model_version.created``, signed) must be accepted by this API's inbound route.
    """
    state = integration.push_state
    if not integration.config.get("push_events") or integration.type not in INBOUND_PATHS:
        return None, state
    if integration.type == "sagemaker":
        return PushCheckOut(
            ok=True,
            message=f"Events posted to {inbound} with the stored key in {KEY_HEADER} are accepted; "
            "the EventBridge rule and API destination are checked on AWS (their metrics show failed invocations).",
        ), state
    webhook_id = (state or {}).get("mlflow_webhook_id")
    webhooks = MlflowWebhooks(load_connection("integration", integration.id, integration.type))
    found = webhooks.get(webhook_id) if webhook_id else None
    if found is None:
        missing = {**(state or {}), "mlflow_webhook_status": "MISSING", "checked_at": utcnow().isoformat()}
        return PushCheckOut(
            ok=False,
            webhook_status="MISSING",
            message="MLflow has no such webhook any more; PUT the integration to register it again.",
        ), missing
    if found.status != "ACTIVE":
        return PushCheckOut(
            ok=False, webhook_status=found.status, message=f"The MLflow webhook is {found.status}."
        ), _state(found)
    tested = webhooks.test(found.webhook_id)
    return PushCheckOut(
        ok=tested.success, webhook_status=found.status, delivery_status=tested.response_status, message=tested.message
    ), _state(found)
