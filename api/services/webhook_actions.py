"""What the webhook history endpoints do: read deliveries, send again, recover, send a test, rotate the secret."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from datetime import timedelta
from typing import Any

from flask import current_app
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.flow_engine import run_flow
from pydantic import SecretStr
from sqlalchemy.orm import Session

from api.errors import Conflict, NotFound, ServiceUnavailable, Unprocessable
from api.pagination import paginate
from api.schemas.deliveries import AttemptOut, DeliveryOut, HistoryQuery, RotatedSecret
from api.schemas.webhooks import RecoverAccepted, RecoverIn
from api.services.connected_records import PREFECT_ERRORS, secrets_store_unavailable
from blocks.connections import load_connection, save_block
from blocks.webhook import WebhookSecrets, new_signing_secret
from flows.recover_deliveries import recover_deliveries
from store import deliveries as store
from store.models import Delivery, Webhook, utcnow
from tasks.webhooks import fanout

log = logging.getLogger(__name__)
# Recoveries run here, off the request (like register-model): the answer is a 202 with the run's id.
_recoveries = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="recover-deliveries")

# Long enough for every receiver to deploy the new secret; both sign meanwhile.
ROTATION_OVERLAP = timedelta(hours=24)


def delivery_out(delivery: Delivery, attempts: list) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        webhook_id=delivery.webhook_id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        status=delivery.status,  # type: ignore[arg-type]
        attempt_count=delivery.attempt_count,
        next_attempt_at=delivery.next_attempt_at,
        last_error=delivery.last_error,
        repeats=delivery.repeats,
        silence_id=delivery.silence_id,
        created_at=delivery.created_at,
        updated_at=delivery.updated_at,
        attempts=[AttemptOut.model_validate(attempt, from_attributes=True) for attempt in attempts],
    )


def history_page(session: Session, webhook: Webhook, query: HistoryQuery) -> tuple[list[DeliveryOut], str | None]:
    """A page of the webhook's deliveries, newest first, each with its attempts."""
    statement = store.deliveries_query(webhook.id, query.status, query.event_type)
    rows, cursor = paginate(session, statement, Delivery.id, query, descending=True)
    attempts = store.attempts_by_delivery(session, [row.id for row in rows])
    return [delivery_out(row, attempts[row.id]) for row in rows], cursor


def one_delivery(session: Session, webhook: Webhook, delivery_id: str) -> DeliveryOut:
    session.expire_all()  # attempts may have been written by another session meanwhile
    delivery = store.get_delivery(session, webhook.id, delivery_id)
    if delivery is None:
        raise NotFound("No such delivery.")
    return delivery_out(delivery, store.attempts_by_delivery(session, [delivery.id])[delivery.id])


def redeliver_now(session: Session, webhook: Webhook, delivery_id: str) -> DeliveryOut:
    """Send one more attempt of the delivery now (same `webhook-id`) and return the delivery."""
    one_delivery(session, webhook, delivery_id)  # 404 before sending anything
    _run(fanout.redeliver(delivery_id, database_url=current_app.config["DATABASE_URL"]))
    return one_delivery(session, webhook, delivery_id)


def start_recovery(session: Session, webhook: Webhook, body: RecoverIn) -> RecoverAccepted:
    """Count the deliveries to send again and start a ``recover-deliveries`` run for them.

    The window ends at ``until``, or now: what arrives after the request is not part of the outage.
    """
    if not webhook.enabled:
        raise Conflict(
            "The webhook is disabled; nothing is sent to it. Re-enable it with PUT ... "
            '"enabled": true, then recover.'
        )
    until = body.until or utcnow()
    if until <= body.since:
        raise Unprocessable.field("until", "must be later than since")
    statuses = list(body.statuses)
    count = fanout.recoverable_count(webhook.id, body.since, until, current_app.config["DATABASE_URL"], statuses)
    if count == 0:
        return RecoverAccepted(deliveries=0, flow_run_id=None)
    parameters = {"webhook_id": webhook.id, "since": body.since, "until": until, "statuses": statuses}
    try:
        with get_client(sync_client=True) as client:
            flow_run = client.create_flow_run(recover_deliveries, parameters=parameters)
    except PREFECT_ERRORS as error:
        raise ServiceUnavailable(f"The Prefect server could not be reached: {type(error).__name__}") from None
    _recoveries.submit(_run_recovery, flow_run, parameters)
    return RecoverAccepted(deliveries=count, flow_run_id=str(flow_run.id))


def _run_recovery(flow_run: FlowRun, parameters: dict[str, Any]) -> None:
    try:
        asyncio.run(run_flow(recover_deliveries, flow_run=flow_run, parameters=parameters))
    except Exception as error:  # noqa: BLE001 - the run's state in Prefect says what failed
        log.error("recover-deliveries run %s failed: %s: %s", flow_run.id, type(error).__name__, error)


def send_test(session: Session, webhook: Webhook) -> DeliveryOut:
    """Send a `webhook.test` event to this webhook only and return its delivery."""
    delivery_id = _run(fanout.send_test_event(webhook.id, database_url=current_app.config["DATABASE_URL"]))
    return one_delivery(session, webhook, delivery_id)


def rotate_secret(session: Session, webhook: Webhook) -> RotatedSecret:
    """A new signing secret; the current one keeps signing for ``ROTATION_OVERLAP``."""
    try:
        secrets: WebhookSecrets = load_connection("webhook", webhook.id, "webhook")
        expires_at = utcnow() + ROTATION_OVERLAP
        signing_secret = new_signing_secret()
        secrets.previous_signing_secret = secrets.signing_secret
        secrets.previous_expires_at = expires_at
        secrets.signing_secret = SecretStr(signing_secret)
        save_block(secrets, "webhook", webhook.id)
    except PREFECT_ERRORS as error:
        raise secrets_store_unavailable(error) from None
    webhook.updated_at = utcnow()  # senders cache secrets per version of the row: this drops it
    session.commit()
    return RotatedSecret(signing_secret=signing_secret, previous_secret_expires_at=expires_at)


def _run(coroutine):
    try:
        return asyncio.run(coroutine)
    except PREFECT_ERRORS as error:  # the signing secrets could not be read
        raise secrets_store_unavailable(error) from None
