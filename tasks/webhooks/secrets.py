"""Load the ``WebhookSecrets`` blocks of many webhooks in a few Prefect API calls.

A fan-out to a thousand webhooks would otherwise make a thousand block reads; the block-documents
filter endpoint answers up to a page of them by name at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect.client.orchestration import get_client

from blocks.connections import block_document_name
from blocks.webhook import WebhookSecrets

_PAGE = 200  # the Prefect API's default page limit


async def load_webhook_secrets(webhook_ids: Sequence[str]) -> dict[str, WebhookSecrets]:
    """The secrets block of each webhook, keyed by webhook id (a webhook without one is left out)."""
    names = {block_document_name("webhook", webhook_id): webhook_id for webhook_id in webhook_ids}
    found: dict[str, WebhookSecrets] = {}
    ordered = list(names)
    async with get_client() as client:
        for start in range(0, len(ordered), _PAGE):
            response = await client.request(
                "POST",
                "/block_documents/filter",
                json={
                    "block_documents": {"name": {"any_": ordered[start : start + _PAGE]}},
                    "block_types": {"slug": {"any_": [WebhookSecrets.get_block_type_slug()]}},
                    "include_secrets": True,
                    "limit": _PAGE,
                },
            )
            response.raise_for_status()
            for document in response.json():
                found[names[document["name"]]] = WebhookSecrets.model_validate(document["data"])
    return found
