"""Client cache shared by the connection blocks: one client per block content and options.

Clients hold connection pools; building one per task call would throw the pool away. The key is a
hash of the block's fields (secrets included, never stored or logged) plus the options, so a
re-saved block with new credentials gets a new client.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr

T = TypeVar("T")

_lock = threading.Lock()
_clients: dict[str, Any] = {}


def _fingerprint(block: BaseModel, options: dict[str, Any]) -> str:
    def reveal(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, dict):
            return {k: reveal(v) for k, v in value.items()}
        if hasattr(value, "get_secret_value"):
            return reveal(value.get_secret_value())
        return value

    fields = {name: reveal(getattr(block, name)) for name in type(block).model_fields}
    payload = json.dumps([type(block).__qualname__, fields, options], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def cached_client(block: BaseModel, options: dict[str, Any], factory: Callable[[dict[str, Any]], T]) -> T:
    """Return the client ``factory(options)`` built for this block content, building it once."""
    key = _fingerprint(block, options)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = factory(options)
        return client


def cache_size() -> int:
    return len(_clients)
