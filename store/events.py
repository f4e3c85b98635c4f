"""The outbox: every ModelPulse event is written here in its producer's transaction.

``record_event`` only adds a row to the caller's session; nothing is sent. After the session commits,
the ids of the events it wrote are handed to the listeners registered with ``on_events_committed``
(the fan-out dispatcher registers one), so an event is never sent for a change that rolled back, and
an event whose dispatch never happened stays undispatched (``dispatched_at`` is null) for the sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from store.ids import new_id
from store.models import Event, utcnow

EVENT_TYPES = ("drift.detected", "threshold.breached", "recommendation.created", "model.registered")

_PENDING_KEY = "modelpulse.pending_event_ids"
_listeners: list[Callable[[list[str]], None]] = []


def record_event(
    session: Session,
    organization_id: str,
    type_: str,
    data: dict[str, Any],
    project_id: str | None = None,
    timestamp: datetime | None = None,
) -> Event:
    """Add an event to the outbox in ``session``'s transaction and return it (not yet committed)."""
    event = Event(
        id=new_id("evt"),
        organization_id=organization_id,
        project_id=project_id,
        type=type_,
        data=data,
        timestamp=timestamp or utcnow(),
    )
    session.add(event)
    session.info.setdefault(_PENDING_KEY, []).append(event.id)
    return event


def on_events_committed(listener: Callable[[list[str]], None]) -> None:
    """Call ``listener(event_ids)`` after each commit that wrote events (once per listener)."""
    if listener not in _listeners:
        _listeners.append(listener)


@sa_event.listens_for(Session, "after_commit")
def _hand_over_committed_events(session: Session) -> None:
    event_ids = session.info.pop(_PENDING_KEY, None)
    if not event_ids:
        return
    for listener in list(_listeners):
        listener(event_ids)


@sa_event.listens_for(Session, "after_rollback")
def _forget_rolled_back_events(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


def event_payload(event: Event) -> dict[str, Any]:
    """The wire form of an event (Standard Webhooks style), as webhooks and exports carry it."""
    return {
        "id": event.id,
        "type": event.type,
        "timestamp": event.timestamp.isoformat().replace("+00:00", "Z"),
        "organization_id": event.organization_id,
        "project_id": event.project_id,
        "data": event.data,
    }
