"""Create, replace and delete webhooks; the signing secret and header values live in a block."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api.connected_records import (
    PREFECT_ERRORS,
    ConnectedRecords,
    commit_or_conflict,
    flush_or_conflict,
    secrets_store_unavailable,
)
from api.schemas.common import MASK
from api.schemas.webhooks import WebhookIn
from blocks.connections import block_document_name, delete_connection, load_connection
from blocks.webhook import WebhookSecrets, new_signing_secret
from store.ids import new_id
from store.models import Webhook, utcnow

webhooks = ConnectedRecords("webhook", Webhook, "wh", WebhookIn)


def _save_secrets(session: Session, webhook: Webhook, secrets: WebhookSecrets) -> None:
    # Senders cache a webhook's secrets per version of its row; a new updated_at drops the cache
    # even when no column changed (a header value is only in the block).
    webhook.updated_at = utcnow()
    try:
        secrets.save(block_document_name("webhook", webhook.id), overwrite=True)
    except PREFECT_ERRORS as error:
        session.rollback()
        raise secrets_store_unavailable(error) from None


def create_webhook(session: Session, organization_id: str, body: WebhookIn) -> tuple[Webhook, str]:
    """Create the webhook and its secrets; returns the record and the new signing secret (shown once)."""
    webhook = Webhook(
        id=new_id("wh"),
        organization_id=organization_id,
        name=body.name,
        url=body.url,
        events=list(body.events),
        header_names=sorted(body.headers),
        project_id=body.project_id,
        enabled=body.enabled,
    )
    session.add(webhook)
    flush_or_conflict(session, body.name)
    signing_secret = new_signing_secret()
    _save_secrets(session, webhook, WebhookSecrets(signing_secret=signing_secret, headers=body.headers))
    try:
        commit_or_conflict(session, body.name)
    except Exception:
        delete_connection("webhook", webhook.id)
        raise
    return webhook, signing_secret


def merge_headers(stored: dict[str, str], body: WebhookIn) -> dict[str, str]:
    """Headers left out of a PUT keep their values; a header sent as the mask keeps its stored value."""
    if "headers" not in body.model_fields_set:
        return stored
    merged: dict[str, Any] = {}
    for name, value in body.headers.items():
        if value == MASK:
            if name not in stored:
                continue  # the mask of a header that never had a value: nothing to keep
            value = stored[name]
        merged[name] = value
    return merged


def replace_webhook(session: Session, webhook: Webhook, body: WebhookIn) -> Webhook:
    try:
        secrets = load_connection("webhook", webhook.id, "webhook")
    except PREFECT_ERRORS as error:
        raise secrets_store_unavailable(error) from None
    headers = merge_headers(secrets.header_values(), body)
    webhook.name = body.name
    webhook.url = body.url
    webhook.events = list(body.events)
    webhook.header_names = sorted(headers)
    webhook.project_id = body.project_id
    if body.enabled and not webhook.enabled:
        webhook.disabled_reason = None
    webhook.enabled = body.enabled
    flush_or_conflict(session, body.name)
    secrets.headers = headers
    _save_secrets(session, webhook, secrets)
    commit_or_conflict(session, body.name)
    return webhook
