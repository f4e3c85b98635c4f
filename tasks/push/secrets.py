"""The secret an integration's inbound deliveries are checked with, cached per version of its row.

MLflow deliveries are signed with the webhook secret ModelPulse generated; EventBridge events carry
the API key the integration stores. Both live in the integration's Prefect block; reading it costs
a round trip to the Prefect server, so a process keeps what it read for as long as the integration's
``updated_at`` is unchanged (every PUT moves it, so a changed secret is read again at once).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime

from pydantic import SecretStr

from blocks.connections import find_connection
from store.models import Integration

_SECRET_FIELDS = {"mlflow": "webhook_secret", "sagemaker": "events_api_key"}
_CACHE_SIZE = 1024
_lock = threading.Lock()
_cache: OrderedDict[str, tuple[datetime, SecretStr | None]] = OrderedDict()


def inbound_secret(integration: Integration) -> SecretStr | None:
    """The integration's inbound secret; ``None`` when it has none (no block, push never set up)."""
    cached = _cache.get(integration.id)
    if cached is not None and cached[0] == integration.updated_at:
        return cached[1]
    block = find_connection("integration", integration.id, integration.type)
    secret = getattr(block, _SECRET_FIELDS.get(integration.type, ""), None) if block is not None else None
    with _lock:  # the API's threads share the cache
        _cache[integration.id] = (integration.updated_at, secret)
        _cache.move_to_end(integration.id)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return secret
