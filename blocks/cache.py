"""Client cache shared by the connection blocks: one client per block content and options, at most
``MAX_CLIENTS`` of them.

Clients hold connection pools; building one per task call would throw the pool away. The key is a
hash of the block's fields (secrets included, never stored or logged) plus the options, so a
re-saved block with new credentials gets a new client. The cache is a least-recently-used one: past
``MAX_CLIENTS`` the client used longest ago is dropped and closed (its sockets with it), so a process
that sees credentials change again and again keeps a bounded number of clients and file descriptors.

``forget(kind, record_id)`` drops (and closes) the clients built from a record's block document, for
the API to call when it replaces or deletes the record: the old credentials' client is not kept
waiting for eviction. Other processes (workers) still drop theirs only by eviction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_CLIENTS = 256

_lock = threading.Lock()
_clients: OrderedDict[str, Any] = OrderedDict()  # least recently used first
# Which block documents (``modelpulse-<kind>-<id>``) each cached client was built from, and back.
_documents: dict[str, set[str]] = {}
_keys_of_document: dict[str, set[str]] = {}


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
    document = getattr(block, "_block_document_name", None)  # set on a loaded or saved Prefect block
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = factory(options)
        _clients.move_to_end(key)
        if document:
            _documents.setdefault(key, set()).add(document)
            _keys_of_document.setdefault(document, set()).add(key)
        evicted = [_drop(oldest) for oldest in list(_clients)[: max(0, len(_clients) - MAX_CLIENTS)]]
    for old in evicted:
        close_client(old)
    return client


def forget(kind: str, record_id: str) -> int:
    """Drop and close the clients built from the record's block document; returns how many.

    Example:
        ```python
        forget("export", "exp_01jdx3k8v5c8m2y7q4n6t9w0ab")  # after its PUT or DELETE
        ```
    """
    from blocks.connections import block_document_name

    with _lock:
        dropped = [_drop(key) for key in list(_keys_of_document.get(block_document_name(kind, record_id), ()))]
    for client in dropped:
        close_client(client)
    return len(dropped)


def clear() -> None:
    """Drop and close every cached client."""
    with _lock:
        dropped = [_drop(key) for key in list(_clients)]
    for client in dropped:
        close_client(client)


def _drop(key: str) -> Any:
    """Remove one entry and its document links (the caller holds the lock); returns its client."""
    for document in _documents.pop(key, ()):
        keys = _keys_of_document.get(document)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del _keys_of_document[document]
    return _clients.pop(key)


def close_client(client: Any) -> None:
    """Close a client's connections where it can be closed (``close()``, or a GAPIC client's
    ``transport.close()``); a client that cannot, or fails to, is left to the garbage collector."""
    close = getattr(client, "close", None)
    if not callable(close):
        close = getattr(getattr(client, "transport", None), "close", None)
    if not callable(close):
        return
    try:
        close()
    except Exception as error:  # closing is housekeeping: it must never fail the caller
        log.warning("could not close a cached %s client: %s", type(client).__name__, type(error).__name__)


def cache_size() -> int:
    return len(_clients)
