"""Create, replace and delete webhooks; every secret lives in the webhook's block.

The block holds the signing secret, header values, and per format: the real URL of a ``slack`` or
``teams`` webhook (the URL is its credential; the record keeps ``https://host/********``) and the
routing key of a ``pagerduty`` one. A PUT that omits a secret, or sends it masked, keeps it, unless
the PUT moves the webhook to another origin (``api.services.credential_origins``): then every header value and
routing key must be sent again (a secret URL is, by being the new URL). The signing secret is
ModelPulse's own and stays.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr
from sqlalchemy.orm import Session

from api.errors import Unprocessable
from api.schemas.common import MASK
from api.schemas.webhooks import WebhookIn
from api.services.connected_records import (
    PREFECT_ERRORS,
    ConnectedRecords,
    commit_or_conflict,
    flush_or_conflict,
    secrets_store_unavailable,
)
from api.services.credential_origins import moves_origin, secrets_must_be_resent
from blocks.connections import delete_connection, load_connection, save_block
from blocks.webhook import WebhookSecrets, new_signing_secret
from store import throttles
from store.ids import new_id
from store.models import Webhook, utcnow
from tasks.webhooks.formats import DEFAULT_URLS, SECRET_URL_FORMATS

webhooks = ConnectedRecords("webhook", Webhook, "wh", WebhookIn)


def masked_url(url: str) -> str:
    """A secret URL as records and responses show it: its origin and the mask."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/{MASK}"


def _is_masked(url: str | None) -> bool:
    return url is not None and urlsplit(url).path == f"/{MASK}"


def _save_secrets(session: Session, webhook: Webhook, secrets: WebhookSecrets) -> None:
    # Senders cache a webhook's secrets per version of its row; a new updated_at drops the cache
    # even when no column changed (a header value is only in the block).
    webhook.updated_at = utcnow()
    try:
        save_block(secrets, "webhook", webhook.id)
    except PREFECT_ERRORS as error:
        session.rollback()
        raise secrets_store_unavailable(error) from None


def _check_credentials(body: WebhookIn, stored_routing_key: str | None) -> str | None:
    """The routing key the webhook will have: given, kept (omitted or masked), or 422."""
    given = body.credentials.routing_key
    if body.format != "pagerduty":
        if given is not None:
            raise Unprocessable.field("credentials.routing_key", "only the pagerduty format takes a routing key")
        return None
    key = stored_routing_key if given is None or given == MASK else given
    if not key:
        raise Unprocessable.field("credentials.routing_key", "the pagerduty format needs its integration (routing) key")
    return key


def _resolve_url(body: WebhookIn, stored: Webhook | None, stored_secret_url: str | None) -> tuple[str, str | None]:
    """The URL the record shows and the secret URL the block keeps (``None`` when the URL is not secret).

    A secret URL left out of a PUT, or sent masked, keeps the stored one.
    """
    url = body.url
    keeps_stored = url is None or _is_masked(url)
    if body.format in SECRET_URL_FORMATS:
        if keeps_stored:
            if stored is None or stored.format not in SECRET_URL_FORMATS or not stored_secret_url:
                raise Unprocessable.field("url", f"the {body.format} webhook URL is required")
            url = stored_secret_url
        return masked_url(url), url
    if url is None and body.format in DEFAULT_URLS:
        return DEFAULT_URLS[body.format], None
    if url is None or _is_masked(url):
        raise Unprocessable.field("url", "a URL is required (a masked one cannot be sent to)")
    return url, None


def _config(body: WebhookIn) -> dict[str, Any]:
    return body.config.model_dump(exclude_none=True)


def create_webhook(session: Session, organization_id: str, body: WebhookIn) -> tuple[Webhook, str]:
    """Create the webhook and its secrets; returns the record and the new signing secret (shown once)."""
    url, secret_url = _resolve_url(body, None, None)
    routing_key = _check_credentials(body, None)
    webhook = Webhook(
        id=new_id("wh"),
        organization_id=organization_id,
        name=body.name,
        url=url,
        format=body.format,
        config=_config(body),
        events=list(body.events),
        header_names=sorted(body.headers),
        project_id=body.project_id,
        enabled=body.enabled,
        filter=body.filter,
        throttle=body.throttle.model_dump() if body.throttle else None,
    )
    session.add(webhook)
    flush_or_conflict(session, body.name)
    signing_secret = new_signing_secret()
    secrets = WebhookSecrets(
        signing_secret=signing_secret, headers=body.headers, url=secret_url, routing_key=routing_key
    )
    _save_secrets(session, webhook, secrets)
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


def kept_secrets(stored: WebhookSecrets, stored_format: str, body: WebhookIn) -> list[str]:
    """The secrets a PUT keeps by omission or the mask, as the API names them."""
    values = stored.header_values()
    if "headers" in body.model_fields_set:  # a header left out of the dict is dropped, not kept
        kept = [f"headers.{name}" for name, value in body.headers.items() if value == MASK and name in values]
    else:
        kept = [f"headers.{name}" for name in values]
    if body.format == stored_format == "pagerduty" and stored.routing_key_value():
        if body.credentials.routing_key in (None, MASK):
            kept.append("credentials.routing_key")
    return kept


def replace_webhook(session: Session, webhook: Webhook, body: WebhookIn) -> Webhook:
    try:
        secrets: WebhookSecrets = load_connection("webhook", webhook.id, "webhook")
    except PREFECT_ERRORS as error:
        raise secrets_store_unavailable(error) from None
    url, secret_url = _resolve_url(body, webhook, secrets.secret_url())
    if moves_origin("webhook", {"url": webhook.url}, {"url": url}):
        secrets_must_be_resent(kept_secrets(secrets, webhook.format, body))
    routing_key = _check_credentials(body, secrets.routing_key_value() if webhook.format == "pagerduty" else None)
    headers = merge_headers(secrets.header_values(), body)
    webhook.name = body.name
    webhook.url = url
    webhook.format = body.format
    webhook.config = _config(body)
    webhook.events = list(body.events)
    webhook.header_names = sorted(headers)
    webhook.project_id = body.project_id
    webhook.filter = body.filter  # a PUT without one removes it; the new updated_at has dispatchers recompile
    throttle = body.throttle.model_dump() if body.throttle else None
    if throttle != webhook.throttle:
        throttles.clear_cooldowns(session, webhook.id)  # other groups or another length: every group afresh
    webhook.throttle = throttle
    if body.enabled and not webhook.enabled:
        webhook.disabled_reason = None
    webhook.enabled = body.enabled
    flush_or_conflict(session, body.name)
    secrets.headers = headers  # type: ignore[assignment]
    secrets.url = SecretStr(secret_url) if secret_url else None
    secrets.routing_key = SecretStr(routing_key) if routing_key else None
    _save_secrets(session, webhook, secrets)
    commit_or_conflict(session, body.name)
    return webhook
