"""``/organizations/{organization_id}/webhooks``: subscriptions to ModelPulse events."""

from __future__ import annotations

from flask import Blueprint, url_for

from api.auth import require_organization_key
from api.db import db
from api.endpoint import Created, endpoint, record_views
from api.schemas.common import masked
from api.schemas.webhooks import WebhookCreated, WebhookIn, WebhookOut
from api.services.webhook_records import create_webhook, replace_webhook, webhooks
from store.models import Webhook

bp = Blueprint("webhooks", __name__, url_prefix="/organizations/<organization_id>/webhooks")
require_organization_key(bp, owned={"webhook_id": Webhook})


def webhook_out(record: Webhook) -> WebhookOut:
    return WebhookOut.of(
        record,
        headers=masked(record.header_names),
        config={name: str(value) for name, value in (record.config or {}).items()},
        credentials=masked(["routing_key"] if record.format == "pagerduty" else []),
    )


record_views(
    bp, webhooks, WebhookOut, webhook_out, id_arg="webhook_id",
    list_view=("list_webhooks", "List all webhooks."),
    get_view=("get_webhook", "Get webhook details."),
)


@bp.post("")
@endpoint(body=WebhookIn, response=WebhookCreated, status=201, problems=(401, 404, 409, 422, 502))
def create(organization_id: str, body: WebhookIn):
    """Create a new webhook.

    `format` picks the receiver: `standard` (signed JSON), `slack`, `teams` or `pagerduty`. The answer
    carries the `signing_secret` (whsec_...) once; standard deliveries are signed with it (Standard
    Webhooks).
    """
    record, signing_secret = create_webhook(db(), organization_id, body)
    location = url_for(".get_webhook", organization_id=organization_id, webhook_id=record.id)
    created = WebhookCreated(**webhook_out(record).model_dump(), signing_secret=signing_secret)
    return Created(created, location)


@bp.put("/<webhook_id>")
@endpoint(body=WebhookIn, response=WebhookOut, problems=(401, 404, 409, 422, 502))
def update_webhook(organization_id: str, webhook_id: str, body: WebhookIn):
    """Update a webhook.

    Secrets left out, or sent masked, keep their stored values: header values, a slack or teams URL,
    a pagerduty routing key. A `url` at another origin needs every header value and routing key sent
    again (422 naming each); the signing secret stays.
    """
    record = webhooks.get(db(), organization_id, webhook_id)
    return webhook_out(replace_webhook(db(), record, body))


@bp.delete("/<webhook_id>")
@endpoint(status=204, problems=(401, 404, 502))
def delete_webhook(organization_id: str, webhook_id: str):
    """Delete a webhook and its secrets."""
    webhooks.delete(db(), webhooks.get(db(), organization_id, webhook_id))
