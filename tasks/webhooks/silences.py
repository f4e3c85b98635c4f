"""The dispatcher's side of silences: whether an event is silenced, and by which silence.

An organization's ``silence_set_version`` comes with the webhook rows the planner loads anyway
(``store.deliveries.subscribed_webhooks``). Its silences are loaded and their matchers compiled once per
version (every silence created or expired sets a new one) and kept in this process; an organization that
never had a silence (no version) costs nothing. Judging an event is pure Python: its time against each
silence's ``[starts_at, ends_at)``, then the matchers against its wire form. So a silence that starts or
ends while events are on their way judges each by when it happened, not by when it was dispatched, and
no event costs a database round trip (except one older than what was loaded: a dispatcher catching up
after an outage loads back to it, once). The silences themselves are ``store.silences``.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from store.event_filters import Filter, FilterInvalid, compile_filter
from store.models import Event, utcnow
from store.silences import silences_ending_after

log = logging.getLogger(__name__)

# Silences of this many organizations are kept (the least recently used go first).
CACHE_SIZE = 10_000
# A load takes the silences that end after this long before now: events that old are judged from the cache.
LOOKBACK = timedelta(hours=1)


@dataclass(frozen=True)
class CompiledSilence:
    id: str
    starts_at: datetime
    ends_at: datetime
    matchers: Filter

    def silences(self, at: datetime, envelope: dict[str, Any]) -> bool:
        return self.starts_at <= at < self.ends_at and self.matchers.matches(envelope)


@dataclass(frozen=True)
class _Loaded:
    version: str
    since: datetime  # holds every silence that ends after this
    silences: tuple[CompiledSilence, ...]


_cache: OrderedDict[str, _Loaded] = OrderedDict()
_lock = threading.Lock()  # fan-outs plan on threads (asyncio.to_thread), several at once
_loads = 0


def silencing(session: Session, event: Event, envelope: dict[str, Any], version: str | None) -> str | None:
    """The id of the oldest silence of the event's organization that silences it (``envelope``: its wire
    form, ``store.events.event_payload``), or ``None``; ``version``: the organization's silence set version
    (``None``: it never had a silence, and nothing is loaded)."""
    if version is None:
        return None
    for silence in _silences(session, event.organization_id, version, event.timestamp):
        if silence.silences(event.timestamp, envelope):
            return silence.id
    return None


def _silences(session: Session, organization_id: str, version: str, at: datetime) -> tuple[CompiledSilence, ...]:
    with _lock:
        loaded = _cache.get(organization_id)
        if loaded is not None and loaded.version == version and loaded.since <= at:
            _cache.move_to_end(organization_id)
            return loaded.silences
    since = min(utcnow() - LOOKBACK, at)
    # Read after the version: at least as new as it, so the entry can only be newer than its version says
    # (and the next event, seeing the version that made it newer, loads again).
    rows = silences_ending_after(session, organization_id, since)
    compiled = []
    for row in rows:
        try:
            compiled.append(CompiledSilence(row.id, row.starts_at, row.ends_at, compile_filter(row.matchers)))
        except FilterInvalid as error:
            # The API stores only matchers that compile; one that does not (written around it) silences nothing.
            log.warning("silence %s: its matchers cannot be used, so it silences nothing: %s", row.id, error)
    silences = tuple(compiled)
    global _loads
    with _lock:
        _loads += 1
        _cache[organization_id] = _Loaded(version, since, silences)
        _cache.move_to_end(organization_id)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return silences


def loads() -> int:
    """How many times this process has loaded an organization's silences (the cache's misses)."""
    return _loads
