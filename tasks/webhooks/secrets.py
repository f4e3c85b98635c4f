"""Load the ``WebhookSecrets`` blocks of many webhooks in a few Prefect API calls, and cache them.

A fan-out to a thousand webhooks would otherwise make a thousand block reads; the block-documents
filter endpoint answers up to a page of them by name at once. The Prefect client is opened once per
process and reused: opening one costs ~50 ms (a TLS context and a CSRF handshake), more than the
read itself.

Blocks are cached per version of their webhook's row (its ``updated_at``): every write of a
webhook's secrets (create, update, rotate-secret) also moves ``updated_at``, so a cached block is
never older than the row the delivery was planned from, and a busy dispatcher reads Prefect only
when a webhook changed.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prefect.client.orchestration import SyncPrefectClient, get_client

from blocks.connections import block_document_name
from blocks.webhook import WebhookSecrets

_PAGE = 200  # the Prefect API's default page limit
_CACHE_SIZE = 10_000
_client_lock = threading.Lock()
_cache_lock = threading.Lock()
_clients: dict[str, SyncPrefectClient] = {}
_cache: OrderedDict[str, tuple[datetime | None, WebhookSecrets]] = OrderedDict()


async def load_webhook_secrets(versions: Mapping[str, datetime | None]) -> dict[str, WebhookSecrets]:
    """The secrets block of each webhook, keyed by webhook id (a webhook without one is left out).

    ``versions`` maps each webhook id to its row's ``updated_at``; a block cached for that same
    version is used as is (``None`` always reads Prefect).
    """
    found: dict[str, WebhookSecrets] = {}
    for webhook_id, version in versions.items():
        cached = _cache.get(webhook_id)
        if version is not None and cached is not None and cached[0] == version:
            found[webhook_id] = cached[1]
    missing = [webhook_id for webhook_id in versions if webhook_id not in found]
    if missing:
        loaded = await asyncio.to_thread(_load, missing)
        for webhook_id, block in loaded.items():
            _remember(webhook_id, versions[webhook_id], block)
        found.update(loaded)
    return found


def _remember(webhook_id: str, version: datetime | None, block: WebhookSecrets) -> None:
    with _cache_lock:  # the API's threads share the cache
        _cache[webhook_id] = (version, block)
        _cache.move_to_end(webhook_id)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


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
