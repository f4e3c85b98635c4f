"""The dispatcher's side of webhook filters: which of an event's matching webhooks accept it.

A webhook's ``filter`` is read with its row (the planner loads the rows anyway), compiled once per
version of the row (``updated_at``, which every PUT moves) and kept in this process; evaluating it is
pure Python over the event's wire form, so filtering adds no database round trip and no I/O per event.
The language itself, and the checks the API runs on it, are ``store.event_filters``.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from store.event_filters import Filter, FilterInvalid, compile_filter
from store.models import Webhook

log = logging.getLogger(__name__)

# Compiled filters of this many webhook versions are kept (the least recently used go first).
CACHE_SIZE = 10_000

_cache: OrderedDict[tuple[str, datetime], Filter | None] = OrderedDict()
_lock = threading.Lock()  # fan-outs plan on threads (asyncio.to_thread), several at once


def compiled_filter(webhook: Webhook) -> Filter | None:
    """The webhook's filter, compiled (``None``: it has none, or it cannot be used: every event passes)."""
    if not webhook.filter:
        return None
    key = (webhook.id, webhook.updated_at)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    try:
        compiled: Filter | None = compile_filter(webhook.filter)
    except FilterInvalid as error:
        # The API only stores filters that compile; one that does not (written around it) must not
        # silence the webhook: it receives every event of its types, as without a filter.
        log.warning("webhook %s: its filter cannot be used, so it is ignored: %s", webhook.id, error)
        compiled = None
    with _lock:
        _cache[key] = compiled
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


def accepts(webhook: Webhook, envelope: dict[str, Any]) -> bool:
    """Whether the webhook's filter lets the event (its wire form, ``store.events.event_payload``) through."""
    compiled = compiled_filter(webhook)
    return compiled is None or compiled.matches(envelope)


def accepting(webhooks: Sequence[Webhook], envelope: dict[str, Any]) -> list[Webhook]:
    """The webhooks whose filter lets the event through, in their order."""
    return [webhook for webhook in webhooks if accepts(webhook, envelope)]


def accepted_by_any(webhooks: Sequence[Webhook], envelope: dict[str, Any]) -> bool:
    """Whether any of the webhooks' filters lets the event through (the first that does ends the search)."""
    return any(accepts(webhook, envelope) for webhook in webhooks)
