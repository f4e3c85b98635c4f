"""Load the ``WebhookSecrets`` blocks of many webhooks in a few Prefect API calls.

A fan-out to a thousand webhooks would otherwise make a thousand block reads; the block-documents
filter endpoint answers up to a page of them by name at once. The Prefect client is opened once per
process and reused: opening one costs ~50 ms (a TLS context and a CSRF handshake), more than the
read itself.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from prefect.client.orchestration import SyncPrefectClient, get_client

from blocks.connections import block_document_name
from blocks.webhook import WebhookSecrets

_PAGE = 200  # the Prefect API's default page limit
_client_lock = threading.Lock()
_clients: dict[str, SyncPrefectClient] = {}


async def load_webhook_secrets(webhook_ids: Sequence[str]) -> dict[str, WebhookSecrets]:
    """The secrets block of each webhook, keyed by webhook id (a webhook without one is left out)."""
    if not webhook_ids:
        return {}
    return await asyncio.to_thread(_load, list(webhook_ids))


def _load(webhook_ids: list[str]) -> dict[str, WebhookSecrets]:
    names = {block_document_name("webhook", webhook_id): webhook_id for webhook_id in webhook_ids}
    ordered = list(names)
    found: dict[str, WebhookSecrets] = {}
    client = _shared_client()
    for start in range(0, len(ordered), _PAGE):
        for document in _read_page(client, ordered[start : start + _PAGE]):
            found[names[document["name"]]] = WebhookSecrets.model_validate(document["data"])
    return found


def _read_page(client: SyncPrefectClient, names: list[str]) -> list[dict[str, Any]]:
    response = client.request(
        "POST",
        "/block_documents/filter",
        json={
            "block_documents": {"name": {"any_": names}},
            "block_types": {"slug": {"any_": [WebhookSecrets.get_block_type_slug()]}},
            "include_secrets": True,
            "limit": _PAGE,
        },
    )
    response.raise_for_status()
    return response.json()


def _shared_client() -> SyncPrefectClient:
    """One open client per Prefect API URL for the life of the process (httpx.Client is thread-safe)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value() or ""
    with _client_lock:
        client = _clients.get(url)
        if client is None:
            client = get_client(sync_client=True)
            client.__enter__()
            _clients[url] = client
        return client
