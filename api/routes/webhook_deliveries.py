"""A webhook's delivery history and the actions on it: redeliver, recover, test, rotate the secret."""

from __future__ import annotations

from flask import Blueprint, url_for

from api.auth import require_organization_key
from api.db import db
from api.endpoint import Accepted, Created, endpoint
from api.schemas.common import Page
from api.schemas.deliveries import DeliveryOut, HistoryQuery, RotatedSecret
from api.schemas.webhooks import RecoverAccepted, RecoverIn
from api.services.webhook_actions import (
    history_page,
    one_delivery,
    redeliver_now,
    rotate_secret,
    send_test,
    start_recovery,
)
from api.services.webhook_records import webhooks
from store.models import Webhook

bp = Blueprint(
    "webhook_deliveries", __name__, url_prefix="/organizations/<organization_id>/webhooks/<webhook_id>"
)
require_organization_key(bp, owned={"webhook_id": Webhook})


@bp.get("/history")
@endpoint(query=HistoryQuery, response=Page[DeliveryOut], problems=(401, 404, 422))
def history(organization_id: str, webhook_id: str, query: HistoryQuery):
    """Get webhook invocation history.

    Deliveries newest first, each with its attempts; filter with `status` and `event_type`.
    """
    webhook = webhooks.get(db(), organization_id, webhook_id)
    items, cursor = history_page(db(), webhook, query)
    return Page[DeliveryOut](items=items, next_cursor=cursor)


@bp.get("/history/<delivery_id>")
@endpoint(response=DeliveryOut, problems=(401, 404))
def get_delivery(organization_id: str, webhook_id: str, delivery_id: str):
    """Get one delivery with its attempts."""
    return one_delivery(db(), webhooks.get(db(), organization_id, webhook_id), delivery_id)


@bp.post("/history/<delivery_id>/redeliver")
@endpoint(response=DeliveryOut, problems=(401, 404, 502))
def redeliver(organization_id: str, webhook_id: str, delivery_id: str):
    """Redeliver a delivery now.

    One new attempt with the same `webhook-id`, freshly signed; answers with the delivery. Whatever
    its status: a `suppressed` (throttled) or `silenced` delivery is sent too (this is the explicit ask
    that recover without `statuses` never makes), and its status then follows the attempt (`succeeded`,
    else `failed`; a retry already scheduled stays).
    """
    return redeliver_now(db(), webhooks.get(db(), organization_id, webhook_id), delivery_id)


@bp.post("/recover")
@endpoint(body=RecoverIn, response=RecoverAccepted, status=202, problems=(401, 404, 409, 422))
def recover(organization_id: str, webhook_id: str, body: RecoverIn):
    """Recover after an outage.

    Every delivery created in `[since, until)` whose last attempt did not succeed (retrying or
    failed) is sent again now, one at a time in order of creation, by a `recover-deliveries` Prefect
    run; its attempts appear in the history (trigger `recover`). `statuses` chooses which: add
    `silenced` for the events a silence held back. Throttled repeats (`suppressed`) are never
    recovered: redeliver one to send it. The run stops at the first delivery the receiver
    still cannot take. A disabled webhook is a 409: re-enable it first (PUT with
    `"enabled": true`).
    """
    accepted = start_recovery(db(), webhooks.get(db(), organization_id, webhook_id), body)
    location = url_for(".history", organization_id=organization_id, webhook_id=webhook_id)
    return Accepted(accepted, location)


@bp.post("/test")
@endpoint(response=DeliveryOut, status=201, problems=(401, 404, 502))
def test(organization_id: str, webhook_id: str):
    """Send a test event.

    A `webhook.test` event goes to this webhook only, now; answers with its delivery.
    """
    delivery = send_test(db(), webhooks.get(db(), organization_id, webhook_id))
    location = url_for(
        ".get_delivery", organization_id=organization_id, webhook_id=webhook_id, delivery_id=delivery.id
    )
    return Created(delivery, location)


@bp.post("/rotate-secret")
@endpoint(response=RotatedSecret, problems=(401, 404, 502))
def rotate(organization_id: str, webhook_id: str):
    """Rotate the signing secret.

    Answers with the new secret once; for 24 hours deliveries are signed with both.
    """
    session = db()
    return rotate_secret(session, webhooks.get(session, organization_id, webhook_id))
